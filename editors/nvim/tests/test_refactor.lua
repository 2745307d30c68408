-- `:Claude refactor` as a user types it, in a Neovim with a screen (driver.lua), against the
-- real server and CLI (test_refactor.json: Read, Edit, then a closing text).
local D = dofile(vim.env.CLAUDE_LSP_REPO .. '/editors/nvim/tests/driver.lua')
local H = D.H

local ORIGINAL = {
  'def total(xs):',
  '    result = 0',
  '    for x in xs:',
  '        result = result + x',
  '    return result',
  '',
  'print(total([1, 2, 3]))',
}
local REFACTORED = {
  'def total(xs):',
  '    return sum(xs)',
  '',
  'print(total([1, 2, 3]))',
}

local function calc_file(name)
  return H.workspace(name, { ['calc.py'] = table.concat(ORIGINAL, '\n') .. '\n' }) .. '/calc.py'
end

local function claude_messages()
  return vim.tbl_filter(function(line)
    return line:find('Claude', 1, true) ~= nil
  end, D.messages())
end

D.setup_plugin()

D.run({
  { 'a refactor of a visual selection edits the buffer with one message and no prompt', function()
    local path = calc_file('plain')
    D.open(path)
    D.type(':messages clear<CR>')
    D.type('2GV5G:')
    D.wait_for_screen(":'<,'>")
    D.type('Claude refactor use the built-in sum<CR>')
    D.wait_for_lines(path, REFACTORED)
    D.wait_for_runs()
    D.wait_for_mode('n')
    H.eq(table.concat(ORIGINAL, '\n') .. '\n', H.read_file(path), 'the file on disk')
    -- Progress went by on the command line; `:messages` keeps only the outcome.
    H.eq({ 'Claude: refactor: edited 1 file · Done: `total` now uses `sum`.' }, claude_messages(), ':messages')
    H.eq({}, vim.tbl_filter(function(line)
      return line:find('Workspace edit', 1, true) or line:find('Reading', 1, true)
    end, D.messages()), 'progress or edit lines in :messages')
  end },

  { 'with preview on, the diff is on the screen while the prompt waits, and Apply applies it', function()
    D.lua("require('claude_lsp').options.preview = true")
    local path = calc_file('preview')
    D.open(path)
    D.type(':messages clear<CR>')
    D.type(':Claude refactor use the built-in sum<CR>')
    local screen = D.wait_for_screen('Apply the edit from Claude?')
    H.eq('c', D.mode().mode, 'the prompt waits for the answer')
    screen = D.wait_for_screen('+    return sum(xs)')
    H.truthy(screen:find('-    result = 0', 1, true), 'the diff is drawn behind the prompt:\n' .. screen)
    H.eq(ORIGINAL, D.lines(path), 'the buffer before the answer')
    D.choose('Apply')
    D.wait_for_lines(path, REFACTORED)
    D.wait_for_mode('n')
    H.eq({ 'Claude: refactor: edited 1 file · Done: `total` now uses `sum`.' }, claude_messages(), ':messages')
  end },

  { 'continue resumes the last conversation; its answer opens in a window', function()
    D.lua("require('claude_lsp').options.preview = false")
    local before = #H.recorded_requests()
    D.type(':Claude continue and add a docstring<CR>')
    D.wait_for_screen('Claude refactor')
    D.wait_for_runs()
    H.truthy(D.screen_text():find('Done: `total` now uses `sum`.', 1, true), 'the answer in its window')
    local requests = H.recorded_requests()
    H.eq(before + 1, #requests, 'one more API call')
    -- The earlier Read, Edit and text are in the resumed conversation.
    H.eq(3, requests[#requests].turnIndex, 'assistant messages in the continued conversation')
    D.type('q')
    D.wait_for_mode('n')
  end },

  { 'with preview on, Discard leaves the buffer alone', function()
    D.lua("require('claude_lsp').options.preview = true")
    local path = calc_file('discard')
    D.open(path)
    D.type(':Claude refactor use the built-in sum<CR>')
    D.wait_for_screen('+    return sum(xs)')
    D.choose('Discard')
    D.wait_for_mode('n')
    D.wait_for_runs()
    H.eq(ORIGINAL, D.lines(path), 'the buffer after Discard')
    H.truthy(vim.tbl_contains(claude_messages(), 'Claude: refactor: edit discarded'), vim.inspect(D.messages()))
  end },
})
