-- Read-only actions through the plugin (test_review.json answers with one finding): the answer
-- opens in a markdown window and findings become diagnostics on the reviewed buffer.
local H = dofile(vim.env.CLAUDE_LSP_REPO .. '/editors/nvim/tests/helpers.lua')

local TEXT = {
  'fn sum(n: u64) -> u64 {',
  '    // adds 1..=n',
  '    if n == 0 { 0 } else { n + sum(n - 1) }',
  '}',
}

local function answer_window()
  local bufnr = vim.api.nvim_get_current_buf()
  H.truthy(vim.api.nvim_buf_get_name(bufnr):find('claude://', 1, true), 'an answer window is current')
  H.eq('markdown', vim.bo[bufnr].filetype, 'the answer filetype')
  return bufnr
end

H.setup_plugin()

H.run({
  { 'a review shows its answer and turns findings into diagnostics', function()
    local dir = H.workspace('review', { ['sum.rs'] = table.concat(TEXT, '\n') .. '\n' })
    local bufnr = H.open(dir .. '/sum.rs')
    vim.cmd('Claude review')
    H.wait_for('the review to finish', function()
      return require('claude_lsp.commands').running() == 0 and #H.progress_for('claude-nvim-1') > 0
    end)
    H.eq({}, H.errors(), 'error notifications')
    local answer = answer_window()
    H.eq('One real problem.', H.lines(answer)[1], 'the answer text')
    local diagnostics = vim.diagnostic.get(bufnr, { namespace = require('claude_lsp.ui').findings_namespace })
    H.eq(1, #diagnostics, 'findings as diagnostics: ' .. vim.inspect(diagnostics))
    H.eq(2, diagnostics[1].lnum, 'the finding line (0-based)')
    H.eq(vim.diagnostic.severity.WARN, diagnostics[1].severity, 'the finding severity')
    H.eq('claude', diagnostics[1].source, 'the finding source')
    H.truthy(diagnostics[1].message:find('Deep recursion', 1, true), diagnostics[1].message)
    H.eq(TEXT, H.lines(bufnr), 'a review edits nothing')
    vim.cmd('normal q')
    H.eq(bufnr, vim.api.nvim_get_current_buf(), 'q closes the answer window')
  end },

  { 'analyze on a selection sends that range and shows the answer', function()
    local dir = H.workspace('analyze', { ['sum.rs'] = table.concat(TEXT, '\n') .. '\n' })
    H.open(dir .. '/sum.rs')
    vim.cmd('normal! 3G')
    vim.cmd('.Claude analyze why is this recursive?')
    H.wait_for('the analysis to finish', function()
      return require('claude_lsp.commands').running() == 0 and #H.progress_for('claude-nvim-2') > 0
    end)
    H.eq({}, H.errors(), 'error notifications')
    H.eq('One real problem.', H.lines(answer_window())[1], 'the answer text')
    local last = H.recorded_requests()[#H.recorded_requests()]
    local prompt = vim.json.encode(last.body.messages)
    H.truthy(prompt:find('why is this recursive?', 1, true), 'the question reaches the model')
    H.truthy(prompt:find('n + sum(n - 1)', 1, true), 'the selected line reaches the model')
  end },
})
