-- Progress of Claude runs: `$/progress` arrives through Neovim's `LspProgress` autocmd. It is
-- shown in one place: the command line, each report replacing the last and none kept in
-- `:messages` (unless a progress UI such as fidget.nvim shows it), and `status()` for a
-- statusline.
local M = {}

local group = vim.api.nvim_create_augroup('claude_lsp.progress', { clear = true })

--- The latest progress text of each run in flight, by token.
---@type table<string|integer, string>
local current = {}
---@type table<string|integer, string>
local titles = {}

--- Text for one progress value: "Claude: refactor — Reading src/lib.rs (40%)".
---@param value table  a WorkDoneProgressBegin/Report/End
---@return string?
function M.format(value)
  if type(value) ~= 'table' then
    return nil
  end
  local parts = {}
  if value.title and value.title ~= '' then
    table.insert(parts, value.title)
  end
  if value.message and value.message ~= '' then
    table.insert(parts, value.message)
  end
  if #parts == 0 then
    return nil
  end
  local text = table.concat(parts, ' — ')
  if value.kind ~= 'end' and type(value.percentage) == 'number' then
    text = ('%s (%d%%)'):format(text, value.percentage)
  end
  return text
end

--- What the runs in flight are doing, for a statusline ('' when none runs).
---@return string
function M.status()
  local texts = vim.tbl_values(current)
  table.sort(texts)
  return table.concat(texts, ' | ')
end

local function has_progress_ui()
  return package.loaded['fidget'] ~= nil
end

---@param opts claude_lsp.Options
function M.setup(opts)
  vim.api.nvim_clear_autocmds({ group = group })
  vim.api.nvim_create_autocmd('LspProgress', {
    group = group,
    desc = 'claude-lsp: show run progress',
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if not client or client.name ~= require('claude_lsp').client_name then
        return
      end
      local token, value = args.data.params.token, args.data.params.value
      if type(value) ~= 'table' then
        return
      end
      -- Only the begin has a title: keep it for the reports.
      if value.kind == 'begin' then
        titles[token] = value.title
      end
      local commands = require('claude_lsp.commands')
      if value.kind == 'end' then
        -- Not shown: one message (the plugin's or the server's) says how the run ended, and a
        -- line under it would wait for "Press ENTER".
        titles[token], current[token] = nil, nil
        commands.progress_ended(token)
        return
      end
      local text = M.format(vim.tbl_extend('keep', value, { title = titles[token] }))
      current[token] = text
      -- A late report of a run whose answer is already shown stays off the screen too.
      if text and opts.progress and not has_progress_ui() and not commands.answered(token) then
        -- history=false: the next report replaces it and `:messages` keeps none of them.
        vim.api.nvim_echo({ { require('claude_lsp.ui').fit(text) } }, false, {})
      end
    end,
  })
end

return M
