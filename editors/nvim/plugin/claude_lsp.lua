-- Defines `:Claude` and the <Plug>(Claude…) mappings; the client itself starts after
-- `require('claude_lsp').setup()` (or `vim.lsp.enable('claude_lsp')`).
if vim.g.loaded_claude_lsp or vim.fn.has('nvim-0.11') == 0 then
  return
end
vim.g.loaded_claude_lsp = true

require('claude_lsp.commands').create()
