-- `:checkhealth claude_lsp` typed by a user (driver.lua), with the plugin attached to a buffer:
-- no ERROR, and the server, its version and the running client are reported OK. No API call is
-- made (no fake API script).
local D = dofile(vim.env.CLAUDE_LSP_REPO .. '/editors/nvim/tests/driver.lua')
local H = D.H

--- The report in the checkhealth buffer, once complete.
local function report()
  D.wait_for_screen('claude-lsp: Neovim')
  D.wait_for_mode('n')
  return D.wait_until('the report to end with the client section', [[
    local text = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
    return text:find('claude-lsp: client', 1, true) and text
  ]])
end

D.setup_plugin()

D.run({
  { 'checkhealth claude_lsp passes with the client attached', function()
    local dir = H.workspace('health', { ['main.lua'] = 'print("hi")\n' })
    D.open(dir .. '/main.lua')
    D.type(':checkhealth claude_lsp<CR>')
    local text = report()
    H.truthy(not text:find('ERROR', 1, true), 'an ERROR in:\n' .. text)
    H.truthy(text:find('OK server: ' .. vim.env.CLAUDE_LSP_SERVER, 1, true), 'the server is found:\n' .. text)
    H.truthy(text:find('OK `claude-lsp --version`', 1, true), '--version works:\n' .. text)
    -- The doctor checks the CLI the plugin is set up with (settings.cliPath).
    H.truthy(text:find(vim.env.CLAUDE_LSP_TEST_CLI, 1, true), 'the doctor finds the CLI:\n' .. text)
    H.truthy(text:find('OK client %d+ running'), 'the client is running:\n' .. text)
    H.truthy(text:find('OK attached to 1 buffer', 1, true), 'the client is attached:\n' .. text)
    D.type(':bdelete<CR>')
  end },

  { 'checkhealth reports a missing server binary as an error', function()
    D.type((":lua vim.lsp.config('claude_lsp', { cmd = { '%s/no-such-claude-lsp' } })<CR>"):format(H.tmp))
    D.type(':checkhealth claude_lsp<CR>')
    local text = report()
    H.truthy(text:find('ERROR `' .. H.tmp .. '/no-such-claude-lsp` was not found', 1, true), text)
  end },
})
