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
  -- vim.lsp.util.apply_workspace_edit applies versioned documentChanges and creates, renames and
  -- deletes files, but Neovim announces only the resource operations: without documentChanges
  -- the server refuses an edit that creates a file.
  capabilities = {
    workspace = {
      workspaceEdit = { documentChanges = true, resourceOperations = { 'create', 'rename', 'delete' } },
    },
  },
  handlers = require('claude_lsp.handlers'),
}
