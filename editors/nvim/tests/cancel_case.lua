-- The cancel scenario shared by test_cancel.lua and test_cancel_hang.lua (their fake API scripts
-- differ), typed as a user does (driver.lua): start a refactor, wait until the CLI is talking to
-- the API, `:Claude cancel`.
local TEXT = { 'fn answer() -> u32 {', '    42', '}' }

---@param D table  driver.lua
---@param name string
return function(D, name)
  local H = D.H
  return function()
    local dir = H.workspace(name, { ['lib.rs'] = table.concat(TEXT, '\n') .. '\n' })
    D.open(dir .. '/lib.rs')
    D.type(':messages clear<CR>')
    D.type(':Claude refactor make it const<CR>')
    H.wait_for('the CLI to call the API', function()
      return #H.recorded_requests() > 0 and #H.cli_processes() > 0
    end)
    D.wait_until('the progress to begin', [[return require('claude_lsp.progress').status() ~= '']])
    D.type(':Claude cancel<CR>')
    D.wait_for_runs()
    H.wait_for(function()
      return 'every claude process to exit (left: ' .. vim.inspect(H.cli_processes()) .. ')'
    end, function()
      return #H.cli_processes() == 0
    end)
    D.wait_until('the progress to end', [[return require('claude_lsp.progress').status() == '']])
    H.eq(TEXT, D.lines(), 'the buffer after cancel')
    H.eq(false, D.lua('return vim.bo.modified'), 'the buffer is unmodified')
    D.wait_for_mode('n')
    H.eq({ 'Claude: cancelled refactor' }, D.messages(), ':messages')
    -- Nothing is left running on the server either.
    local runs = D.lua([[
      local client = vim.lsp.get_clients({ name = 'claude_lsp' })[1]
      local answer = client:request_sync('claude/runs', vim.empty_dict(), 5000, 0)
      return answer and answer.result and answer.result.runs
    ]])
    H.eq({}, runs, 'runs in flight')
  end
end
