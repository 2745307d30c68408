-- claude-lsp for Neovim's built-in client (0.11+): `vim.lsp.enable('claude_lsp')`.
--
-- No `filetypes`: Claude works on any file, so the server attaches to every buffer that has a
-- filetype. `require('claude_lsp').setup()` fills `vim.g.claude_lsp`; users who skip setup can set
-- it themselves (`server_path`, `settings`).
local user = vim.g.claude_lsp or {}
local settings = user.settings or {}

---@type vim.lsp.Config
return {
  cmd = { user.server_path or 'claude-lsp' },
  root_markers = { '.git' },
  -- Read once at start-up (docs/lsp-extensions.md); `settings.claude` answers
  -- workspace/configuration for later changes.
  init_options = next(settings) and settings or vim.empty_dict(),
  settings = { claude = next(settings) and settings or vim.empty_dict() },
}
