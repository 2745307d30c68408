-- The cancel scenario shared by test_cancel.lua and test_cancel_hang.lua (their fake API scripts
-- differ): start a refactor, wait until the CLI is talking to the API, `:Claude cancel`.
local TEXT = { 'fn answer() -> u32 {', '    42', '}' }

---@param H table  the test file's helpers
---@param name string
return function(H, name)
  return function()
    local dir = H.workspace(name, { ['lib.rs'] = table.concat(TEXT, '\n') .. '\n' })
    local bufnr = H.open(dir .. '/lib.rs')
    vim.cmd('Claude refactor make it const')
    H.wait_for('the CLI to call the API', function()
      return #H.recorded_requests() > 0 and #H.cli_processes() > 0
    end)
    H.wait_for('the progress to begin', function()
      return #H.progress_for('claude-nvim-1') > 0
    end)
    vim.cmd('Claude cancel')
    H.wait_for_notification('cancelled refactor', 20000)
    H.wait_for(function()
      return 'every claude process to exit (left: ' .. vim.inspect(H.cli_processes()) .. ')'
    end, function()
      return #H.cli_processes() == 0
    end, 20000)
    H.eq(TEXT, H.lines(bufnr), 'the buffer after cancel')
    H.eq(false, vim.bo[bufnr].modified, 'the buffer is unmodified')
    H.eq({}, H.errors(), 'error notifications')
    local progress
    H.wait_for(function()
      return 'the progress to end: ' .. vim.inspect(progress)
    end, function()
      progress = H.progress_for('claude-nvim-1')
      return progress[#progress].value.kind == 'end'
    end, 20000)
    H.truthy(progress[#progress].value.message:find('[Cc]ancel'), 'the end says the run was cancelled')
    -- Nothing is left running on the server either.
    local client = vim.lsp.get_clients({ name = 'claude_lsp' })[1]
    local answer = client:request_sync('claude/runs', vim.empty_dict(), 5000, bufnr)
    H.truthy(answer and not answer.err, 'claude/runs answered: ' .. vim.inspect(answer))
    H.eq({}, answer.result.runs, 'runs in flight')
  end
end
