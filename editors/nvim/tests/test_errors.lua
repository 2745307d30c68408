-- A failing run as a user sees it (driver.lua): the API refuses the key (test_errors.json). The
-- error is said once, with its hint once, and the editor is back in Normal mode.
local D = dofile(vim.env.CLAUDE_LSP_REPO .. '/editors/nvim/tests/driver.lua')
local H = D.H

D.setup_plugin()

D.run({
  { 'an API error is reported once, with its hint once', function()
    local dir = H.workspace('errors', { ['lib.rs'] = 'fn answer() -> u32 {\n    42\n}\n' })
    D.open(dir .. '/lib.rs')
    D.type(':messages clear<CR>')
    D.type(':Claude refactor make it const<CR>')
    -- The message is wider than the screen: it waits for Enter, once.
    D.wait_for_screen('Press ENTER')
    H.truthy(D.screen_text():find('refactor failed', 1, true), D.screen_text())
    D.type('<CR>')
    D.wait_for_mode('n')
    D.wait_for_runs()
    local messages = D.messages()
    H.eq(1, #messages, 'one message:\n' .. table.concat(messages, '\n'))
    H.eq(
      'Claude: refactor failed: authentication failed: the Anthropic API rejected the credentials (HTTP 401)'
        .. ' (Check your API key or log in again with `claude` then /login.)',
      messages[1],
      'the message, its hint after it'
    )
  end },
})
