-- Progress of Claude runs: `$/progress` arrives through Neovim's `LspProgress` autocmd; show it
-- with vim.notify unless a progress UI (fidget.nvim) already does.
local M = {}

local group = vim.api.nvim_create_augroup('claude_lsp.progress', { clear = true })

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

local function has_progress_ui()
  return package.loaded['fidget'] ~= nil
end

---@param opts claude_lsp.Options
function M.setup(opts)
  vim.api.nvim_clear_autocmds({ group = group })
  if not opts.progress then
    return
  end
  vim.api.nvim_create_autocmd('LspProgress', {
    group = group,
    desc = 'claude-lsp: show run progress',
    callback = function(args)
      if has_progress_ui() then
        return
      end
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if not client or client.name ~= require('claude_lsp').client_name then
        return
      end
      local text = M.format(args.data.params.value)
      if text then
        vim.notify(text, vim.log.levels.INFO, { title = 'claude-lsp' })
      end
    end,
  })
end

return M
