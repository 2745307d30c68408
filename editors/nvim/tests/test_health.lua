-- `:checkhealth claude_lsp` with the plugin attached to a buffer: no ERROR, and the server, its
-- version and the running client are reported OK. No API call is made (no fake API script).
local H = dofile(vim.env.CLAUDE_LSP_REPO .. '/editors/nvim/tests/helpers.lua')

H.setup_plugin()

H.run({
  { 'checkhealth claude_lsp passes with the client attached', function()
    local dir = H.workspace('health', { ['main.lua'] = 'print("hi")\n' })
    H.open(dir .. '/main.lua')
    vim.cmd('checkhealth claude_lsp')
    local report = H.lines(vim.api.nvim_get_current_buf())
    local text = table.concat(report, '\n')
    H.truthy(text:find('claude%-lsp: server'), 'the server section:\n' .. text)
    for _, line in ipairs(report) do
      H.truthy(not line:find('ERROR'), 'an ERROR line in:\n' .. text)
    end
    H.truthy(text:find('OK server: ' .. vim.env.CLAUDE_LSP_SERVER, 1, true), 'the server is found:\n' .. text)
    H.truthy(text:find('OK `claude-lsp --version`', 1, true), '--version works:\n' .. text)
    H.truthy(text:find('OK client %d+ running'), 'the client is running:\n' .. text)
    H.truthy(text:find('OK attached to 1 buffer', 1, true), 'the client is attached:\n' .. text)
  end },

  { 'checkhealth reports a missing server binary as an error', function()
    vim.lsp.config('claude_lsp', { cmd = { H.tmp .. '/no-such-claude-lsp' } })
    vim.cmd('checkhealth claude_lsp')
    local text = table.concat(H.lines(vim.api.nvim_get_current_buf()), '\n')
    H.truthy(text:find('ERROR `' .. H.tmp .. '/no-such-claude-lsp` was not found', 1, true), text)
  end },
})
