-- A refactor through the plugin: the real server and CLI against the fake API (test_refactor.json:
-- Read, then Edit, then a closing text). The edit reaches the buffer exactly, through the editor,
-- with progress on the plugin's token; the file on disk is left to the user to write.
local H = dofile(vim.env.CLAUDE_LSP_REPO .. '/editors/nvim/tests/helpers.lua')

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

local function calc_workspace(name)
  local dir = H.workspace(name, { ['calc.py'] = table.concat(ORIGINAL, '\n') .. '\n' })
  return dir, dir .. '/calc.py'
end

local function wait_for_run(token)
  H.wait_for('the run to finish', function()
    return require('claude_lsp.commands').running() == 0
  end)
  local kinds = vim.tbl_map(function(event)
    return event.value.kind
  end, H.progress_for(token))
  return kinds
end

H.setup_plugin()

H.run({
  { 'a visual-range refactor edits the buffer exactly, with progress', function()
    local _, path = calc_workspace('visual')
    local bufnr = H.open(path)
    vim.cmd('normal! 2GV5G\27')
    vim.cmd("'<,'>Claude refactor use the built-in sum")
    local token = 'claude-nvim-1'
    H.wait_for('the edit to reach the buffer', function()
      return vim.deep_equal(H.lines(bufnr), REFACTORED)
    end)
    local kinds = wait_for_run(token)
    H.eq({}, H.errors(), 'error notifications')
    H.eq('begin', kinds[1], 'first progress kind')
    H.eq('end', kinds[#kinds], 'last progress kind')
    H.truthy(vim.tbl_contains(kinds, 'report'), 'a progress report between begin and end: ' .. vim.inspect(kinds))
    H.truthy(H.progress_for(token)[1].value.title:find('refactor'), 'the begin title names the action')
    H.truthy(vim.bo[bufnr].modified, 'the edit is in the buffer, not yet written')
    H.eq(table.concat(ORIGINAL, '\n') .. '\n', H.read_file(path), 'the file on disk')
    H.wait_for_notification('refactor: edited 1 file')
    -- One conversation: Read, Edit, then the closing text.
    local turns = vim.tbl_map(function(request)
      return request.turnIndex
    end, H.recorded_requests())
    H.eq({ 0, 1, 2 }, turns, 'API turns')
    H.truthy(require('claude_lsp.commands').last_run().session_id, 'the session is kept for :Claude continue')
  end },

  { 'with preview on, the diff is shown and the edit applied only when accepted', function()
    require('claude_lsp').options.preview = true
    local shown
    vim.ui.select = function(items, _, on_choice)
      H.eq({ 'Apply', 'Discard' }, items, 'the preview choices')
      shown = H.lines(vim.api.nvim_get_current_buf())
      on_choice('Discard')
    end
    local _, path = calc_workspace('preview-discard')
    local bufnr = H.open(path)
    vim.cmd('Claude refactor use the built-in sum')
    H.wait_for_notification('refactor: edit discarded')
    H.eq(ORIGINAL, H.lines(bufnr), 'the buffer after Discard')
    H.truthy(vim.tbl_contains(shown, '-    result = 0') and vim.tbl_contains(shown, '+    return sum(xs)'),
      'the preview shows the diff: ' .. vim.inspect(shown))
    H.truthy(shown[1]:find('calc.py'), 'the diff names the file')

    vim.ui.select = function(_, _, on_choice)
      on_choice('Apply')
    end
    local _, path2 = calc_workspace('preview-apply')
    local bufnr2 = H.open(path2)
    vim.cmd('Claude refactor use the built-in sum')
    H.wait_for('the accepted edit', function()
      return vim.deep_equal(H.lines(bufnr2), REFACTORED)
    end)
    require('claude_lsp').options.preview = false
  end },

  { 'continue resumes the conversation of the last run', function()
    local before = #H.recorded_requests()
    H.notifications = {}
    vim.cmd('Claude continue and add a docstring')
    H.wait_for('the continued run to answer', function()
      return require('claude_lsp.commands').running() == 0 and #H.recorded_requests() > before
    end)
    -- No edit this time: the answer is shown in a markdown window.
    local answer = vim.api.nvim_get_current_buf()
    H.truthy(vim.api.nvim_buf_get_name(answer):find('claude://Claude refactor', 1, true), 'the answer window')
    H.eq('markdown', vim.bo[answer].filetype, 'the answer filetype')
    H.truthy(H.lines(answer)[1]:find('Done: `total` now uses `sum`.', 1, true), vim.inspect(H.lines(answer)))
    local last = H.recorded_requests()[#H.recorded_requests()]
    -- The earlier Read, Edit and text are in the resumed conversation.
    H.eq(3, last.turnIndex, 'assistant messages in the continued conversation')
    H.eq({}, H.errors(), 'error notifications')
  end },
})
