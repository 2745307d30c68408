-- `:Claude cancel` while the API never answers (test_cancel_hang.json): no edit, one message,
-- and no `claude` process is left; for a review (a server command) too.
local D = dofile(vim.env.CLAUDE_LSP_REPO .. '/editors/nvim/tests/driver.lua')
local cancel = dofile(D.H.repo .. '/editors/nvim/tests/cancel_case.lua')

D.setup_plugin()
D.run({
  { 'cancel during a hung API call stops the run and leaves the buffer alone', cancel(D, 'hang') },
  { 'a cancelled review is reported once', function()
    local H = D.H
    local before = #H.recorded_requests()
    D.type(':messages clear<CR>')
    -- Count the server's messages as they arrive: its cancel notice is the event to wait for.
    D.lua([[
      local commands = require('claude_lsp.commands')
      local seen = commands.cancel_notice_reported
      _G.server_messages = 0
      commands.cancel_notice_reported = function(message)
        _G.server_messages = _G.server_messages + 1
        return seen(message)
      end
    ]])
    D.type(':Claude review<CR>')
    H.wait_for('the review to call the API', function()
      return #H.recorded_requests() > before and #H.cli_processes() > 0
    end)
    D.type(':Claude cancel<CR>')
    D.wait_for_runs()
    D.wait_until('the server to say the review stopped', 'return _G.server_messages > 0')
    D.wait_for_mode('n')
    H.eq({ 'Claude: cancelled review' }, D.messages(), ':messages')
  end },
})
