-- `:Claude review`, the review code action and the finding's code actions as a user types them
-- (driver.lua), against the real server and CLI (test_review.json: every review finds the same
-- problem on line 3, with a fix, and answers in two paragraphs, which the server sends as a
-- document). Findings are the server's: diagnostics that follow edits, with apply-fix and dismiss
-- code actions.
local D = dofile(vim.env.CLAUDE_LSP_REPO .. '/editors/nvim/tests/driver.lua')
local H = D.H

local TEXT = {
  'fn sum(n: u64) -> u64 {',
  '    // adds 1..=n',
  '    if n == 0 { 0 } else { n + sum(n - 1) }',
  '}',
}
local TITLE = 'Deep recursion overflows the stack for large n'

local diagnostics, wait_for_diagnostics, code_action = D.diagnostics, D.wait_for_diagnostics, D.code_action

--- Wait for the answer of a review in its window (it arrives after the run's progress ends),
--- then close the window with `q`.
local function wait_for_answer()
  local screen = D.wait_for_screen('The recursion depth grows with n.')
  H.truthy(screen:find('One real problem.', 1, true), screen)
  D.wait_until('the answer window to be current', [[return vim.bo.filetype == 'markdown']])
  D.type('q')
  D.wait_until('the code to be current', [[return vim.bo.filetype == 'rust']])
end

--- `:Claude review` from the first line, waiting for its run, its answer and its finding.
local function review()
  D.type('gg:Claude review<CR>')
  D.wait_for_runs()
  wait_for_answer()
  D.wait_for_mode('n')
  return wait_for_diagnostics(1)
end

-- Each review here must reach the API (the second replaces the first's finding): no result cache.
D.setup_plugin({ settings = { resultCache = false } })

local dir = H.workspace('review', { ['sum.rs'] = table.concat(TEXT, '\n') .. '\n' })
local path = dir .. '/sum.rs'

D.run({
  { 'a review puts its finding on the line, coded by category, and its answer in a window', function()
    D.type(':cd ' .. dir .. '<CR>')
    D.open(path)
    D.type(':messages clear<CR>')
    local found = review()[1]
    H.eq(2, found.lnum, 'the finding line (0-based)')
    H.eq('bug', found.code, 'the diagnostic code is the category')
    H.eq('claude', found.source, 'the diagnostic source')
    H.truthy(found.message:find(TITLE, 1, true), found.message)
    H.eq(TEXT, D.lines(), 'a review edits nothing')
    H.eq({}, D.messages(), ':messages')
  end },

  { 'the review code action replaces the finding instead of adding a second one', function()
    local before = #H.recorded_requests()
    code_action('Claude: review file')
    wait_for_answer()
    H.truthy(#H.recorded_requests() > before, 'the second review called the API')
    H.eq(1, #diagnostics(), 'findings after both reviews')
  end },

  { 'a line added above moves the finding; dismiss removes it', function()
    D.type('ggO// top<Esc>')
    H.wait_for('the finding to move down', function()
      local found = diagnostics()
      return #found == 1 and found[1].lnum == 3
    end)
    D.type('4G')
    code_action('Claude: dismiss finding')
    wait_for_diagnostics(0)
    D.type('ggdd')
  end },

  { 'an edit of the flagged line removes the finding', function()
    review()
    D.type('3G0/sum(<CR>ciwtotal<Esc>')
    wait_for_diagnostics(0)
    D.type('u')
  end },

  { 'apply fix edits the flagged code and the finding goes', function()
    review()
    D.type('3G')
    code_action('Claude: apply fix — ' .. TITLE)
    wait_for_diagnostics(0)
    H.eq('    if n == 0 { 0 } else { (1..=n).sum::<u64>() }', D.lines()[3], 'the fixed line')
  end },

  { 'analyze on a selection sends that range and lists the finding in its answer', function()
    D.type('u3G:.Claude analyze why is this recursive?<CR>')
    D.wait_for_screen('## Findings')
    D.wait_for_runs()
    local screen = D.screen_text()
    H.truthy(screen:find('One real problem.', 1, true), screen)
    H.truthy(screen:find('- `sum.rs:3` warning, bug: ' .. TITLE, 1, true), screen)
    local prompt = vim.json.encode(H.recorded_requests()[#H.recorded_requests()].body.messages)
    H.truthy(prompt:find('why is this recursive?', 1, true), 'the question reaches the model')
    H.truthy(prompt:find('n + sum(n - 1)', 1, true), 'the selected line reaches the model')
    D.type('q')
    D.wait_for_mode('n')
  end },

  { ':Claude review takes key=value options before the instruction', function()
    local before = #H.recorded_requests()
    D.type('gg:Claude review minSeverity=warning fix=true mind the stack<CR>')
    D.wait_for_runs()
    wait_for_answer()
    D.wait_for_mode('n')
    local prompt = vim.json.encode(H.recorded_requests()[before + 1].body.messages)
    H.truthy(prompt:find('severity `warning` or more severe', 1, true), 'minSeverity reaches the model')
    H.truthy(prompt:find('Give every finding you can fix', 1, true), 'fix reaches the model')
    H.truthy(prompt:find('mind the stack', 1, true), 'the instruction follows the options')
    H.eq(nil, prompt:find('minSeverity=', 1, true), 'the options are not part of the instruction')
  end },
})
