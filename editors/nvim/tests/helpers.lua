-- Shared by the Neovim tests. Each test file runs in its own `nvim --headless -u NONE -l`, started
-- by scripts/test.sh with:
--   CLAUDE_LSP_REPO      the repository root
--   CLAUDE_LSP_SERVER    the claude-lsp binary under test
--   CLAUDE_LSP_TEST_CLI  the real `claude` CLI
--   CLAUDE_LSP_TEST_TMP  a fresh temporary directory (HOME, XDG_CACHE_HOME and workspaces live here)
--   CLAUDE_LSP_TEST_RECORD  the fake API's request log (JSON lines), when the test has a script
-- and the environment that points the CLI at the fake API. Tests of what a user types drive a
-- second, embedded Neovim through driver.lua; test_unit.lua runs the plugin's pure parts here.
local H = {}

--- How long any single wait may take (a run of the real CLI included).
H.TIMEOUT = 60000

local function required_env(name)
  local value = vim.env[name]
  if not value or value == '' then
    error(('%s is not set: run the tests through editors/nvim/scripts/test.sh'):format(name), 0)
  end
  return value
end

H.repo = required_env('CLAUDE_LSP_REPO')
H.tmp = required_env('CLAUDE_LSP_TEST_TMP')

--- Wait until `condition()` is truthy; fail with `what` (a string, or a function that describes
--- the state at the time of failure) after `timeout` ms.
function H.wait_for(what, condition, timeout)
  local ok = vim.wait(timeout or H.TIMEOUT, function()
    return condition() and true or false
  end, 20)
  if not ok then
    error('timed out waiting for ' .. (type(what) == 'function' and what() or what), 2)
  end
end

function H.eq(expected, actual, what)
  if not vim.deep_equal(expected, actual) then
    error(('%s:\nexpected: %s\n  actual: %s'):format(what or 'values differ', vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

function H.truthy(value, what)
  if not value then
    error(what or 'expected a true value', 2)
  end
  return value
end

--- Every vim.notify call, in order: { message, level }.
H.notifications = {}
vim.notify = function(message, level)
  table.insert(H.notifications, { message = message, level = level or vim.log.levels.INFO })
end

local function run_git(dir, args)
  local result = vim.system(vim.list_extend({ 'git', '-C', dir }, args), { text = true }):wait()
  if result.code ~= 0 then
    error(('git %s failed: %s'):format(table.concat(args, ' '), result.stderr), 0)
  end
end

--- A fresh git repository under the test's temporary directory holding `files`
--- (path → text), committed. Returns its absolute path.
function H.workspace(name, files)
  local dir = H.tmp .. '/' .. name
  vim.fn.mkdir(dir, 'p')
  for path, text in pairs(files) do
    local full = dir .. '/' .. path
    vim.fn.mkdir(vim.fs.dirname(full), 'p')
    local file = assert(io.open(full, 'wb'))
    file:write(text)
    file:close()
  end
  run_git(dir, { 'init', '-q' })
  run_git(dir, { '-c', 'user.name=test', '-c', 'user.email=test@example.com', 'add', '-A' })
  run_git(dir, { '-c', 'user.name=test', '-c', 'user.email=test@example.com', 'commit', '-q', '-m', 'init' })
  return dir
end

function H.read_file(path)
  local file = assert(io.open(path, 'rb'))
  local text = file:read('*a')
  file:close()
  return text
end

--- The requests the fake API received so far (decoded JSON lines of its record file).
function H.recorded_requests()
  local path = vim.env.CLAUDE_LSP_TEST_RECORD
  if not path or vim.fn.filereadable(path) == 0 then
    return {}
  end
  local requests = {}
  for _, line in ipairs(vim.fn.readfile(path)) do
    if line ~= '' then
      table.insert(requests, vim.json.decode(line))
    end
  end
  return requests
end

--- PIDs of live `claude` CLI processes started for this test: the test CLI's executable, told
--- apart from other tests' by the CLAUDE_CONFIG_DIR under this test's temporary directory.
--- Zombies count as gone.
function H.cli_processes()
  local cli = vim.uv.fs_realpath(required_env('CLAUDE_LSP_TEST_CLI'))
  local marker = 'CLAUDE_CONFIG_DIR=' .. H.tmp
  local pids = {}
  for _, dir in ipairs(vim.fn.glob('/proc/[0-9]*', false, true)) do
    if vim.uv.fs_readlink(dir .. '/exe') == cli then
      local stat = H.read_optional(dir .. '/stat') or ''
      local environ = H.read_optional(dir .. '/environ') or ''
      if stat:match('%) (%a)') ~= 'Z' and environ:find(marker, 1, true) then
        table.insert(pids, tonumber(dir:match('%d+$')))
      end
    end
  end
  return pids
end

--- The contents of `path`, or nil when it cannot be read (e.g. a process that just exited).
function H.read_optional(path)
  local file = io.open(path, 'rb')
  if not file then
    return nil
  end
  local text = file:read('*a')
  file:close()
  return text
end

--- Run `cases` ({ name, fn } in order), print `PASS name` / `FAIL name: error` for each, then
--- call `finish` (if given), stop every client and exit non-zero when any failed.
function H.run(cases, finish)
  local failed = 0
  for _, case in ipairs(cases) do
    local ok, err = xpcall(case[2], debug.traceback)
    -- Each result starts a line of its own: Neovim may have echoed a message without a newline
    -- (":checkhealth" does).
    if ok then
      io.stdout:write(('\nPASS %s\n'):format(case[1]))
    else
      failed = failed + 1
      io.stdout:write(('\nFAIL %s: %s\n'):format(case[1], tostring(err)))
      io.stdout:write(('  notifications: %s\n'):format(vim.inspect(H.notifications)))
    end
    io.stdout:flush()
  end
  if finish then
    finish()
  end
  for _, client in ipairs(vim.lsp.get_clients()) do
    client:stop(true)
  end
  vim.wait(2000, function()
    return #vim.lsp.get_clients() == 0
  end, 20)
  os.exit(failed == 0 and 0 or 1)
end

return H
