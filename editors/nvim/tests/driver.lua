-- A real Neovim driven as a user drives it: the test (running in `nvim -l`) starts a second
-- `nvim --embed`, attaches to it as its UI over msgpack-RPC (so messages, prompts and floats are
-- drawn on a screen grid kept here, and "Press ENTER" prompts happen as they do for a user),
-- types keys with nvim_input and reads the screen, the mode and the editor's state.
--
-- The embedded Neovim loads the plugin from this repository and sets it up against the server
-- under test; nothing in it is replaced (vim.notify, vim.ui.select are Neovim's own).
local H = dofile(vim.env.CLAUDE_LSP_REPO .. '/editors/nvim/tests/helpers.lua')

local uv = vim.uv
local mpack = vim.mpack

local D = {}
D.H = H

--- The screen size of the embedded Neovim.
D.COLUMNS, D.LINES = 100, 30

local child = {}

local function decode_nil(value)
  if value == mpack.NIL then
    return nil
  end
  return value
end

--- The screen as a list of strings, one per row (trailing blanks kept).
local grid = {}

local function grid_resize(width, height)
  for row = 1, height do
    grid[row] = {}
    for col = 1, width do
      grid[row][col] = ' '
    end
  end
  for row = height + 1, #grid do
    grid[row] = nil
  end
end

local function grid_line(row, col, cells)
  local line = grid[row + 1]
  if not line then
    return
  end
  for _, cell in ipairs(cells) do
    -- An empty text is the right half of a double-width character.
    for _ = 1, cell[3] or 1 do
      col = col + 1
      line[col] = cell[1]
    end
  end
end

local function grid_scroll(top, bot, left, right, rows)
  -- Rows move up (rows > 0) or down (rows < 0) inside [top, bot) x [left, right).
  local first, last, step = top, bot - 1 - rows, 1
  if rows < 0 then
    first, last, step = bot - 1, top - rows, -1
  end
  for row = first, last, step do
    local from, to = grid[row + rows + 1], grid[row + 1]
    if from and to then
      for col = left + 1, right do
        to[col] = from[col]
      end
    end
  end
end

local function on_redraw(batches)
  for _, batch in ipairs(batches) do
    local name = batch[1]
    for i = 2, #batch do
      local args = batch[i]
      if name == 'grid_resize' then
        grid_resize(args[2], args[3])
      elseif name == 'grid_clear' then
        grid_resize(#(grid[1] or {}), #grid)
      elseif name == 'grid_line' then
        grid_line(args[2], args[3], args[4])
      elseif name == 'grid_scroll' then
        grid_scroll(args[2], args[3], args[4], args[5], args[6])
      end
    end
  end
end

local function on_data(data)
  local pos = 1
  while pos <= #data do
    local kind, id_or_cb, method_or_error, args_or_result
    kind, id_or_cb, method_or_error, args_or_result, pos = child.session:receive(data, pos)
    if kind == 'response' then
      id_or_cb(decode_nil(method_or_error), decode_nil(args_or_result))
    elseif kind == 'notification' and method_or_error == 'redraw' then
      on_redraw(args_or_result)
    elseif kind == 'request' then
      -- The embedded Neovim asks nothing of its UI; answer so it never waits.
      child.stdin:write(child.session:reply(id_or_cb) .. child.pack(mpack.NIL) .. child.pack(mpack.NIL))
    end
    if not kind then
      break
    end
  end
end

--- Start the embedded Neovim and attach to it as its UI (done by the first request).
local function start()
  local stdin, stdout, stderr = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
  child.session = mpack.Session({ unpack = mpack.Unpacker() })
  child.pack = mpack.Packer()
  child.stdin = stdin
  child.stderr = {}
  local handle, err = uv.spawn(vim.v.progpath, {
    args = { '--embed', '-u', 'NONE', '-i', 'NONE', '--cmd', 'set shortmess+=I' },
    stdio = { stdin, stdout, stderr },
  }, function(code)
    child.exited = code
  end)
  if not handle then
    error('cannot start the embedded nvim: ' .. tostring(err), 0)
  end
  child.handle = handle
  stdout:read_start(function(read_err, data)
    if data then
      on_data(data)
    elseif read_err then
      child.read_error = read_err
    end
  end)
  stderr:read_start(function(_, data)
    if data then
      table.insert(child.stderr, data)
    end
  end)
  D.request('nvim_ui_attach', D.COLUMNS, D.LINES, { ext_linegrid = true, rgb = true })
  D.lua([[
    vim.opt.rtp:prepend(... .. '/editors/nvim')
    vim.cmd('filetype on')
    vim.cmd.runtime('plugin/claude_lsp.lua')
  ]], H.repo)
end

--- Call an API function of the embedded Neovim and wait for its answer.
function D.request(method, ...)
  if not child.session then
    start()
  end
  local args = { ... }
  local done, response_err, result = false, nil, nil
  local header = child.session:request(function(err, value)
    done, response_err, result = true, err, value
  end)
  child.stdin:write(header .. child.pack(method) .. child.pack(args))
  -- Neovim leaves other calls unanswered while "Press ENTER" waits (nvim_get_mode and nvim_input
  -- are answered at once).
  local fast = method == 'nvim_get_mode' or method == 'nvim_input'
  local prompt
  H.wait_for(function()
    return ('%s to answer (stderr: %s)'):format(method, table.concat(child.stderr))
  end, function()
    local last = grid[#grid]
    prompt = not fast and last and table.concat(last):find('Press ENTER', 1, true)
    return done or child.exited or prompt
  end)
  if not done and prompt then
    error(('%s: Neovim waits for Press ENTER:\n%s'):format(method, D.screen_text()), 2)
  end
  if not done then
    error(('the embedded nvim exited (%s) during %s: %s'):format(child.exited, method, table.concat(child.stderr)), 2)
  end
  if response_err then
    error(('%s failed: %s'):format(method, vim.inspect(response_err)), 2)
  end
  return result
end

--- Run Lua `code` in the embedded Neovim with `...` as its arguments; returns its result.
--- Neovim answers no such call while a prompt waits for the user: that fails at once.
function D.lua(code, ...)
  local mode = D.request('nvim_get_mode')
  if mode.blocking or mode.mode:sub(1, 1) == 'r' then
    error(('Neovim waits in a prompt (mode %s):\n%s'):format(mode.mode, D.screen_text()), 2)
  end
  return D.request('nvim_exec_lua', code, { ... })
end

--- Type `keys` (|nvim_input()| notation), as a user does.
function D.type(keys)
  D.request('nvim_input', keys)
end

--- The mode and whether Neovim waits for input in a prompt (|nvim_get_mode()|); answers even
--- while a prompt blocks.
function D.mode()
  return D.request('nvim_get_mode')
end

--- The screen rows as strings, trailing blanks removed.
function D.screen()
  local rows = {}
  for _, line in ipairs(grid) do
    rows[#rows + 1] = (table.concat(line):gsub('%s+$', ''))
  end
  return rows
end

function D.screen_text()
  return table.concat(D.screen(), '\n')
end

--- Wait until the screen shows `text` (plain); returns the screen.
function D.wait_for_screen(text)
  H.wait_for(function()
    return ('the screen to show %q; it shows:\n%s'):format(text, D.screen_text())
  end, function()
    return D.screen_text():find(text, 1, true)
  end)
  return D.screen_text()
end

--- Wait until Neovim is in `mode` (e.g. 'n') and not blocked in a prompt.
function D.wait_for_mode(mode)
  H.wait_for(function()
    return ('mode %q; it is %s; the screen:\n%s'):format(mode, vim.inspect(D.mode()), D.screen_text())
  end, function()
    local current = D.mode()
    return current.mode == mode and not current.blocking
  end)
end

--- Wait until `code` (Lua run in the embedded Neovim, with `...`) returns a truthy value;
--- returns it. Only call while Neovim is not blocked in a prompt.
function D.wait_until(what, code, ...)
  local args = { ... }
  local value
  H.wait_for(function()
    return ('%s; the screen:\n%s'):format(what, D.screen_text())
  end, function()
    value = D.lua(code, unpack(args))
    return value
  end)
  return value
end

--- Answer a vim.ui.select (Neovim's own: a numbered list) by typing the number of `label`.
function D.choose(label)
  local screen = D.wait_for_screen(label)
  local number
  for _, row in ipairs(vim.split(screen, '\n', { plain = true })) do
    number = number or row:match('^(%d+): ' .. vim.pesc(label))
  end
  H.truthy(number, ('a numbered choice %q on the screen:\n%s'):format(label, screen))
  D.type(number .. '<CR>')
end

--- The diagnostics of the current buffer, every namespace, top to bottom.
function D.diagnostics()
  local found = D.lua([[
    return vim.tbl_map(function(d)
      return { lnum = d.lnum, code = d.code, source = d.source, severity = d.severity, message = d.message }
    end, vim.diagnostic.get(0))
  ]])
  table.sort(found, function(a, b)
    return a.lnum < b.lnum
  end)
  return found
end

--- Wait until the current buffer has `count` diagnostics; returns them.
function D.wait_for_diagnostics(count)
  H.wait_for(function()
    return ('%d diagnostics; there are %s'):format(count, vim.inspect(D.diagnostics()))
  end, function()
    return #D.diagnostics() == count
  end)
  return D.diagnostics()
end

--- Pick `choice` in the menu of `vim.lsp.buf.code_action()` at the cursor.
function D.code_action(choice)
  D.type(':lua vim.lsp.buf.code_action()<CR>')
  D.choose(choice)
  D.wait_for_mode('n')
end

--- `:messages` as lines.
function D.messages()
  local text = D.lua([[return vim.api.nvim_exec2('messages', { output = true }).output]])
  return vim.split(text, '\n', { plain = true, trimempty = true })
end

--- Set the plugin up in the embedded Neovim against the server under test; `opts` are merged
--- into the setup() options.
function D.setup_plugin(opts)
  D.lua([[
    local opts = ...
    require('claude_lsp').setup(vim.tbl_deep_extend('force', {
      server_path = vim.env.CLAUDE_LSP_SERVER,
      settings = { cliPath = vim.env.CLAUDE_LSP_TEST_CLI, warmPool = 0 },
    }, opts))
  ]], opts or vim.empty_dict())
end

--- Open `path` by typing `:edit`, and wait until claude-lsp is attached and initialized.
function D.open(path)
  D.type(':edit ' .. vim.fn.fnameescape(path) .. '<CR>')
  D.wait_until('claude-lsp to attach to ' .. path, [[
    local client = vim.lsp.get_clients({ bufnr = 0, name = 'claude_lsp' })[1]
    return client and client.initialized and vim.api.nvim_buf_get_name(0) == ...
  ]], path)
end

--- The lines of the buffer of `path` (default: the current buffer).
function D.lines(path)
  return D.lua([[
    local path = ...
    return vim.api.nvim_buf_get_lines(path and vim.fn.bufnr(path) or 0, 0, -1, false)
  ]], path)
end

--- Wait until the buffer of `path` holds `lines`.
function D.wait_for_lines(path, lines)
  H.wait_for(function()
    return ('%s to hold %s; it holds %s'):format(path, vim.inspect(lines), vim.inspect(D.lines(path)))
  end, function()
    return vim.deep_equal(D.lines(path), lines)
  end)
end

--- Wait until no run of this editor is in flight.
function D.wait_for_runs()
  D.wait_until('the runs to finish', [[return require('claude_lsp.commands').running() == 0]])
end

--- Stop the embedded Neovim (and with it the server).
function D.stop()
  if child.handle and not child.exited then
    pcall(D.request, 'nvim_command', 'qall!')
  end
end

--- Run the cases (see helpers.lua H.run), stopping the embedded Neovim at the end.
function D.run(cases)
  local wrapped = {}
  for _, case in ipairs(cases) do
    table.insert(wrapped, {
      case[1],
      function()
        local case_ok, case_err = xpcall(case[2], debug.traceback)
        if not case_ok then
          local messages_ok, messages = pcall(D.messages)
          messages = messages_ok and table.concat(messages, '\n') or tostring(messages)
          error(('%s\n  screen:\n%s\n  :messages:\n%s'):format(case_err, D.screen_text(), messages), 0)
        end
      end,
    })
  end
  H.run(wrapped, D.stop)
end

return D
