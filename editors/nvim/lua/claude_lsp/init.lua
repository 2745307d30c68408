-- claude-lsp for Neovim: set-up and options. See `:help claude_lsp`.
local M = {}

--- The LSP client name (and `lsp/claude_lsp.lua` config name).
M.client_name = 'claude_lsp'

---@class claude_lsp.Options
---@field server_path? string   the `claude-lsp` executable (default: found on PATH)
---@field settings? table       server settings: initializationOptions and the `claude` section
---@field filetypes? string[]   attach only to these filetypes (default: every filetype)
---@field enable? boolean       call `vim.lsp.enable('claude_lsp')` (default: true)
---@field preview? boolean      show a diff and ask before applying an edit (default: false)
---@field output? 'float'|'split'|'vsplit'  where answers are shown (default: 'float')
---@field progress? boolean     show progress on the command line (default: true; off when fidget.nvim is loaded)

local defaults = {
  server_path = 'claude-lsp',
  settings = {},
  filetypes = nil,
  enable = true,
  preview = false,
  output = 'float',
  progress = true,
}

---@type claude_lsp.Options
M.options = vim.deepcopy(defaults)

local function validate(opts)
  vim.validate('server_path', opts.server_path, 'string')
  vim.validate('settings', opts.settings, 'table')
  vim.validate('filetypes', opts.filetypes, 'table', true)
  vim.validate('enable', opts.enable, 'boolean')
  vim.validate('preview', opts.preview, 'boolean')
  vim.validate('progress', opts.progress, 'boolean')
  vim.validate('output', opts.output, function(value)
    return value == 'float' or value == 'split' or value == 'vsplit'
  end, "'float', 'split' or 'vsplit'")
end

--- Configure and enable the client, and create `:Claude` and the <Plug> mappings.
---@param opts? claude_lsp.Options
function M.setup(opts)
  if vim.fn.has('nvim-0.11') == 0 then
    vim.notify('claude-lsp needs Neovim 0.11 or newer', vim.log.levels.ERROR)
    return
  end
  local merged = vim.tbl_deep_extend('force', vim.deepcopy(defaults), opts or {})
  local ok, err = pcall(validate, merged)
  if not ok then
    -- vim.validate prefixes the message with this file's position, which helps nobody here.
    local message = tostring(err):gsub('^[^:]+:%d+: ', '')
    vim.notify('claude-lsp: invalid setup() option: ' .. message, vim.log.levels.ERROR)
    return
  end
  M.options = merged

  -- `lsp/claude_lsp.lua` reads this, so `vim.lsp.config` and a later re-read agree.
  vim.g.claude_lsp = { server_path = merged.server_path, settings = merged.settings }
  local settings = next(merged.settings) and merged.settings or vim.empty_dict()
  vim.lsp.config(M.client_name, {
    cmd = { merged.server_path },
    filetypes = merged.filetypes,
    init_options = settings,
    settings = { claude = settings },
  })

  require('claude_lsp.commands').create()
  require('claude_lsp.progress').setup(merged)
  if merged.enable then
    vim.lsp.enable(M.client_name)
  end
end

return M
