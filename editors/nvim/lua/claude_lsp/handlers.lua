-- Handlers for what the server sends this client on its own: edits (from code actions and
-- commands), messages and answer documents. Neovim's defaults print one `:messages` line per
-- edit, prefix every message with `LSP[claude_lsp]` and open an answer in the current window.
local ui = require('claude_lsp.ui')

local levels = vim.log.levels
local by_type = { levels.ERROR, levels.WARN, levels.INFO, levels.DEBUG }

local function options()
  return require('claude_lsp').options
end

---@type table<string, lsp.Handler>
local M = {}

--- `workspace/applyEdit`: through the diff preview when `preview` is on. A server request is
--- answered when the handler returns, so this needs a vim.ui.select that decides at once (the
--- default one does); an undecided preview is answered "not applied". Nothing is said here: the
--- server's message follows (the answer, or why the edit was not applied), and two messages in
--- a row wait for "Press ENTER".
M['workspace/applyEdit'] = function(_, params, ctx)
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  if not client or type(params) ~= 'table' or type(params.edit) ~= 'table' then
    return { applied = false, failureReason = 'no edit to apply' }
  end
  local decided, accepted = false, false
  if options().preview then
    ui.confirm_edit(params.edit, client.offset_encoding, options(), function(choice)
      decided, accepted = true, choice
    end)
  else
    decided, accepted = true, true
  end
  if not decided then
    return { applied = false, failureReason = 'the preview was not answered at once (vim.ui.select is asynchronous)' }
  end
  if not accepted then
    return { applied = false, failureReason = 'discarded in the preview' }
  end
  local ok, err = pcall(ui.apply, params.edit, client.offset_encoding)
  if not ok then
    return { applied = false, failureReason = tostring(err) }
  end
  return { applied = true }
end

--- `window/showMessage`: one line as a notification, a longer answer in the answer window.
M['window/showMessage'] = function(_, params)
  if type(params) ~= 'table' or type(params.message) ~= 'string' then
    return
  end
  if require('claude_lsp.commands').cancel_notice_reported(params.message) then
    return
  end
  local level = by_type[params.type] or levels.INFO
  local title, body = params.message:match('^(Claude[^\n]*):\n(.*)$')
  if body and level >= levels.INFO then
    ui.show_scratch(title, vim.split(body, '\n', { plain = true }), { output = options().output })
  else
    ui.notify(params.message, level)
  end
end

--- `window/showDocument`: the server's answer documents open in the answer window; anything
--- else goes to Neovim's handler.
M['window/showDocument'] = function(err, params, ctx)
  local path = type(params) == 'table' and not params.external and vim.uri_to_fname(params.uri)
  if not path or vim.fn.fnamemodify(path, ':e') ~= 'md' or vim.fn.filereadable(path) == 0 then
    return vim.lsp.handlers['window/showDocument'](err, params, ctx)
  end
  ui.show_scratch('Claude', vim.fn.readfile(path), { output = options().output })
  return { success = true }
end

return M
