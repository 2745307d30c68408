-- `:Claude {subcommand}`: one user command for every claude-lsp action. Generate, refactor and
-- analyze use the server's custom requests (docs/lsp-extensions.md): the server applies nothing
-- for a request, this module applies the returned WorkspaceEdit and shows the answer. Review uses
-- the `claude.review` command: its findings are the server's state (diagnostics that follow edits,
-- with apply-fix and dismiss code actions), shared with the review code actions.
local M = {}

local api = vim.api
local ui = require('claude_lsp.ui')

local INFO, WARN, ERROR = vim.log.levels.INFO, vim.log.levels.WARN, vim.log.levels.ERROR
-- LSP's RequestCancelled: what a request answers after `$/cancelRequest`.
local REQUEST_CANCELLED = -32800

M.subcommands = { 'generate', 'analyze', 'refactor', 'review', 'changes', 'continue', 'cancel', 'usage' }

--- Runs started from this editor and not yet answered, by progress token. A command run
--- (review) has no request: it ends with its progress.
---@type table<string, { client_id: integer, request_id?: integer, action: string, bufnr: integer }>
local runs = {}
--- Tokens of runs cancelled from here: their late answers (if any) are dropped. Neovim itself
--- drops RequestCancelled answers, so the cancel reports the run.
---@type table<string, true>
local cancelled = {}
local run_counter = 0
--- Progress tokens of this editor's runs: the prefix, then the run's number.
local TOKEN_PREFIX = 'claude-nvim-'
--- The server says "Claude: <action> cancelled" for each command run (reviews, code actions) it
--- stops; after `:Claude cancel`, whose one message already says so, those are dropped. Notices
--- may come before the cancel's answer: `cancelling` counts cancels in flight, `notices` the
--- notices still to come (negative when some came first).
local cancelling, notices = 0, 0
--- The last answered run, for `:Claude continue`.
---@type { action: string, session_id: string, bufnr: integer }?
local last_run = nil

local function options()
  return require('claude_lsp').options
end

local notify = ui.notify

local function client_for(bufnr)
  return vim.lsp.get_clients({ bufnr = bufnr, name = require('claude_lsp').client_name })[1]
end

--- The LSP range of a command's line range: linewise, or exactly the last charwise visual
--- selection when the command was given `'<,'>` from one. nil without a range.
---@param bufnr integer
---@param cmd { range: integer, line1: integer, line2: integer }
---@param encoding string
---@return table?
function M.command_range(bufnr, cmd, encoding)
  if cmd.range == 0 then
    return nil
  end
  local first = api.nvim_buf_get_lines(bufnr, cmd.line1 - 1, cmd.line1, false)[1] or ''
  local last = api.nvim_buf_get_lines(bufnr, cmd.line2 - 1, cmd.line2, false)[1] or ''
  local start_byte, end_byte = 0, #last
  local mark_start = api.nvim_buf_get_mark(bufnr, '<')
  local mark_end = api.nvim_buf_get_mark(bufnr, '>')
  if vim.fn.visualmode() == 'v' and mark_start[1] == cmd.line1 and mark_end[1] == cmd.line2 then
    start_byte = math.min(mark_start[2], #first)
    -- The '> mark is on the last selected character; the range ends after all of its bytes.
    if mark_end[2] < #last then
      end_byte = mark_end[2] + 1 + vim.str_utf_end(last, mark_end[2] + 1)
    end
  end
  return {
    start = { line = cmd.line1 - 1, character = vim.str_utfindex(first, encoding, start_byte, false) },
    ['end'] = { line = cmd.line2 - 1, character = vim.str_utfindex(last, encoding, end_byte, false) },
  }
end

local function format_count(n)
  if n >= 1000 then
    return ('%.1fk'):format(n / 1000)
  end
  return tostring(n)
end

--- "3 turns · 1.2k tokens · $0.0123" from an ActionResult's metadata.
---@param metadata table?
---@return string
function M.format_metadata(metadata)
  if type(metadata) ~= 'table' then
    return ''
  end
  local parts = {}
  if tonumber(metadata.numTurns) then
    table.insert(parts, ('%d turn%s'):format(metadata.numTurns, metadata.numTurns == 1 and '' or 's'))
  end
  local tokens = (tonumber(metadata.inputTokens) or 0) + (tonumber(metadata.outputTokens) or 0)
  if tokens > 0 then
    table.insert(parts, format_count(tokens) .. ' tokens')
  end
  if tonumber(metadata.costUsd) and metadata.costUsd > 0 then
    table.insert(parts, ('$%.4f'):format(metadata.costUsd))
  end
  return table.concat(parts, ' · ')
end

--- Paths of documents the edit is pinned to an older version of (the user typed meanwhile).
local function stale_documents(edit)
  local stale = {}
  for _, change in ipairs(edit.documentChanges or {}) do
    local document = change.textDocument
    if document and type(document.version) == 'number' then
      local bufnr = vim.fn.bufnr(vim.uri_to_fname(document.uri))
      local current = bufnr ~= -1 and vim.lsp.util.buf_versions[bufnr]
      if current and current > document.version then
        table.insert(stale, vim.fn.fnamemodify(vim.uri_to_fname(document.uri), ':~:.'))
      end
    end
  end
  return stale
end

--- Apply `edit` (after the preview, when on) and say so in one message ending with `summary`.
local function apply_edit(action, client, edit, summary)
  summary = summary or ''
  local stale = stale_documents(edit)
  if #stale > 0 then
    notify(
      ('%s: not applied, %s changed while Claude worked; run it again'):format(action, table.concat(stale, ', ')),
      WARN
    )
    return
  end
  local function apply()
    local ok, err = pcall(ui.apply, edit, client.offset_encoding)
    if not ok then
      notify(('%s: cannot apply the edit: %s'):format(action, tostring(err)), ERROR)
      return
    end
    local files = ui.edit_file_count(edit)
    local message = ('%s: edited %d file%s'):format(action, files, files == 1 and '' or 's')
    notify(summary ~= '' and ('%s · %s'):format(message, summary) or message)
  end
  if options().preview then
    ui.confirm_edit(edit, client.offset_encoding, options(), function(accepted)
      if accepted then
        apply()
      else
        notify(action .. ': edit discarded')
      end
    end)
  else
    apply()
  end
end

local function show_answer(action, result)
  local lines = vim.split(result.text or '', '\n', { plain = true })
  local findings = type(result.findings) == 'table' and ui.findings_lines(result.findings) or {}
  if #findings > 0 then
    vim.list_extend(lines, { '', '## Findings', '' })
    vim.list_extend(lines, findings)
  end
  local summary = M.format_metadata(result.metadata)
  if summary ~= '' then
    vim.list_extend(lines, { '', '---', '_' .. summary .. '_' })
  end
  ui.show_scratch('Claude ' .. action, lines, { output = options().output })
end

local function on_response(action, client, bufnr, err, result)
  if err then
    if err.code == REQUEST_CANCELLED then
      notify(action .. ' cancelled')
      return
    end
    -- One message, the hint after it on the same line.
    local message = tostring(err.message or 'unknown error')
    local hint = type(err.data) == 'table' and err.data.hint
    if type(hint) == 'string' and hint ~= '' and not message:find(hint, 1, true) then
      message = ('%s (%s)'):format(message, hint)
    end
    notify(('%s failed: %s'):format(action, message), ERROR)
    return
  end
  if type(result) ~= 'table' then
    notify(action .. ': the server answered without a result', ERROR)
    return
  end
  if type(result.sessionId) == 'string' then
    last_run = { action = action, session_id = result.sessionId, bufnr = bufnr }
  end
  local edited = type(result.edit) == 'table' and ui.edit_file_count(result.edit) > 0
  local text = type(result.text) == 'string' and vim.trim(result.text) or ''
  if edited then
    -- The first line of Claude's summary ends the one message about the edit.
    apply_edit(action, client, result.edit, vim.split(text, '\n', { plain = true })[1])
  end
  if action == 'analyze' or (not edited and text ~= '') then
    show_answer(action, result)
  end
end

--- The client of `spec.bufnr`, a new progress token and the ActionParams of `spec` (nil when
--- claude-lsp is not attached, which is said).
---@return vim.lsp.Client?, string?, table?
local function prepare(spec)
  local client = client_for(spec.bufnr)
  if not client then
    notify('claude-lsp is not attached to this buffer (see :checkhealth claude_lsp)', ERROR)
    return nil
  end
  run_counter = run_counter + 1
  local token = TOKEN_PREFIX .. run_counter
  local params = vim.tbl_extend('force', spec.options or {}, {
    textDocument = { uri = vim.uri_from_bufnr(spec.bufnr) },
    range = spec.range,
    instruction = spec.instruction,
    sessionId = spec.session_id,
    workDoneToken = token,
  })
  params.scope = spec.scope or params.scope
  return client, token, params
end

--- The `key=value` options each subcommand takes (ActionParams fields, docs/lsp-extensions.md):
--- a list of values, `true` for a boolean, `false` for free text.
local SCOPES = { 'selection', 'file', 'changes', 'folder', 'workspace' }
local DEPTHS = { 'quick', 'normal', 'deep' }
local BOOLEAN = { 'true', 'false' }
M.option_values = {
  generate = { directory = false, model = false },
  refactor = { model = false },
  analyze = {
    depth = DEPTHS,
    includeTests = BOOLEAN,
    scope = { 'folder', 'workspace' },
    directory = false,
    model = false,
    noCache = BOOLEAN,
  },
  review = {
    minSeverity = { 'error', 'warning', 'info', 'hint' },
    fix = BOOLEAN,
    scope = SCOPES,
    depth = DEPTHS,
    includeTests = BOOLEAN,
    directory = false,
    model = false,
    noCache = BOOLEAN,
  },
}
M.option_values.changes = vim.deepcopy(M.option_values.review)
M.option_values.changes.scope = nil

--- Split `text` into its leading `key=value` options and the instruction after them.
---@param subcommand string
---@param text string
---@return table? options, string instruction, string? error
function M.parse_options(subcommand, text)
  local allowed = M.option_values[subcommand]
  if not allowed then
    return {}, text, nil
  end
  local options, rest = {}, text
  while true do
    local key, value, after = rest:match('^(%a+)=(%S*)%s*(.-)$')
    if not key then
      break
    end
    local values = allowed[key]
    if values == nil then
      local names = vim.tbl_keys(allowed)
      table.sort(names)
      return nil, text, ('%s takes no option %q%s'):format(
        subcommand, key, #names > 0 and ' (it takes ' .. table.concat(names, ', ') .. ')' or '')
    end
    if values and not vim.tbl_contains(values, value) then
      return nil, text, ('%s=%s: expected one of %s'):format(key, value, table.concat(values, ', '))
    end
    if values == BOOLEAN then
      options[key] = value == 'true'
    elseif value == '' then
      return nil, text, ('%s= needs a value'):format(key)
    else
      options[key] = value
    end
    rest = after
  end
  return options, rest, nil
end

--- Start `claude/<action>` on `spec.bufnr`. Returns the run's progress token, or nil.
---@param action 'generate'|'analyze'|'refactor'|'review'
---@param spec { bufnr: integer, range?: table, instruction?: string, session_id?: string, scope?: string, options?: table }
---@return string?
function M.run(action, spec)
  local client, token, params = prepare(spec)
  if not client or not token then
    return nil
  end
  local bufnr = spec.bufnr
  local ok, request_id = client:request('claude/' .. action, params, function(err, result)
    runs[token] = nil
    if cancelled[token] then
      cancelled[token] = nil
      return
    end
    on_response(action, client, bufnr, err, result)
  end, bufnr)
  if not ok or not request_id then
    notify('the claude-lsp server has stopped', ERROR)
    return nil
  end
  runs[token] = { client_id = client.id, request_id = request_id, action = action, bufnr = bufnr }
  return token
end

--- Start a review through the server's `claude.review` command on `spec.bufnr`; it runs in the
--- background and ends with its progress. Returns the run's progress token, or nil.
---@param spec { bufnr: integer, range?: table, instruction?: string, scope: string, options?: table }
---@return string?
function M.review(spec)
  local client, token, params = prepare(spec)
  if not client or not token then
    return nil
  end
  local bufnr = spec.bufnr
  runs[token] = { client_id = client.id, action = 'review', bufnr = bufnr }
  local command = { command = 'claude.review', arguments = { params } }
  local ok = client:request('workspace/executeCommand', command, function(err)
    if err then
      runs[token] = nil
      on_response('review', client, bufnr, err, nil)
    end
  end, bufnr)
  if not ok then
    runs[token] = nil
    notify('the claude-lsp server has stopped', ERROR)
    return nil
  end
  return token
end

--- Whether `token` is the progress token of a run of this editor that has been answered.
---@param token string|integer
---@return boolean
function M.answered(token)
  return type(token) == 'string' and vim.startswith(token, TOKEN_PREFIX) and runs[token] == nil
end

--- A command run is over when its progress ends (its answer and findings arrive on their own).
---@param token string|integer
function M.progress_ended(token)
  local run = runs[token]
  if run and not run.request_id then
    runs[token] = nil
  end
end

--- Stop every run: this editor's requests (`$/cancelRequest`) and the server's background runs
--- started from code actions (`claude.cancel`, which stops every run of the server). One
--- notification says what stopped.
function M.cancel()
  local clients = vim.lsp.get_clients({ name = require('claude_lsp').client_name })
  if #clients == 0 then
    notify('claude-lsp is not running', WARN)
    return
  end
  local actions, stopped = {}, {}
  for token, run in pairs(runs) do
    local client = vim.lsp.get_client_by_id(run.client_id)
    if client and run.request_id then
      client:cancel_request(run.request_id)
    end
    table.insert(actions, run.action)
    table.insert(stopped, run)
    runs[token] = nil
    cancelled[token] = true
  end
  table.sort(actions)
  local pending, stopped_on_servers = #clients, 0
  local requests = vim.tbl_count(vim.tbl_filter(function(run)
    return run.request_id ~= nil
  end, stopped))
  cancelling = cancelling + 1
  local function report()
    -- The server usually counts this editor's runs too; the rest ran in the background.
    local others = stopped_on_servers - #actions
    if #actions == 0 and others <= 0 then
      notify('nothing to cancel')
      return
    end
    local parts = {}
    if #actions > 0 then
      table.insert(parts, table.concat(actions, ', '))
    end
    if others > 0 then
      table.insert(parts, ('%d background run%s'):format(others, others == 1 and '' or 's'))
    end
    notify('cancelled ' .. table.concat(parts, ' and '))
  end
  for _, client in ipairs(clients) do
    client:request('workspace/executeCommand', { command = 'claude.cancel', arguments = {} }, function(err, result)
      if err then
        notify('cancel failed: ' .. tostring(err.message), ERROR)
      elseif type(result) == 'table' and tonumber(result.cancelled) then
        stopped_on_servers = stopped_on_servers + result.cancelled
      end
      pending = pending - 1
      if pending == 0 then
        cancelling = cancelling - 1
        -- Request runs answer RequestCancelled; every other stopped run sends a notice.
        notices = notices + math.max(stopped_on_servers - requests, 0)
        report()
      end
    end)
  end
end

--- Whether `message` (window/showMessage) is the server's notice of a run `:Claude cancel`
--- stopped, already reported (then it is counted as seen).
---@param message string
---@return boolean
function M.cancel_notice_reported(message)
  if not message:match('^Claude: %a+ cancelled; nothing was applied$') then
    return false
  end
  if notices <= 0 and cancelling == 0 then
    return false
  end
  notices = notices - 1
  return true
end

--- Usage totals from `claude/usage`, as lines.
---@param totals table
---@return string[]
function M.format_usage(totals)
  local lines = {}
  for _, key in ipairs(vim.tbl_keys(totals)) do
    local value = totals[key]
    if type(value) == 'table' then
      value = vim.inspect(value, { newline = ' ', indent = '' })
    elseif key:lower():find('usd') and type(value) == 'number' then
      value = ('$%.4f'):format(value)
    end
    table.insert(lines, ('%s: %s'):format(key, tostring(value)))
  end
  table.sort(lines)
  return lines
end

function M.usage(bufnr)
  local client = client_for(bufnr) or vim.lsp.get_clients({ name = require('claude_lsp').client_name })[1]
  if not client then
    notify('claude-lsp is not running', WARN)
    return
  end
  client:request('claude/usage', vim.empty_dict(), function(err, result)
    if err then
      notify('usage failed: ' .. tostring(err.message), ERROR)
    elseif type(result) == 'table' then
      ui.show_scratch('Claude usage', M.format_usage(result), { output = options().output, filetype = 'text' })
    end
  end, bufnr)
end

--- Run `callback(instruction)` with `given`, or with what the user types when it is empty.
local function with_instruction(prompt, given, callback)
  if given and given ~= '' then
    callback(given)
    return
  end
  vim.ui.input({ prompt = prompt }, function(input)
    if input and vim.trim(input) ~= '' then
      callback(vim.trim(input))
    end
  end)
end

--- Number of runs this editor is waiting for (for a statusline).
---@return integer
function M.running()
  return vim.tbl_count(runs)
end

--- The last answered run: `{ action, session_id, bufnr }`, or nil.
function M.last_run()
  return last_run and vim.deepcopy(last_run) or nil
end

local handlers = {}

function handlers.generate(ctx)
  with_instruction('Claude generate: ', ctx.text, function(instruction)
    M.run('generate', { bufnr = ctx.bufnr, range = ctx.range, instruction = instruction, options = ctx.options })
  end)
end

function handlers.refactor(ctx)
  with_instruction('Claude refactor: ', ctx.text, function(instruction)
    M.run('refactor', { bufnr = ctx.bufnr, range = ctx.range, instruction = instruction, options = ctx.options })
  end)
end

function handlers.analyze(ctx)
  M.run('analyze', {
    bufnr = ctx.bufnr,
    range = ctx.range,
    instruction = ctx.text ~= '' and ctx.text or nil,
    options = ctx.options,
  })
end

function handlers.review(ctx)
  M.review({
    bufnr = ctx.bufnr,
    range = ctx.range,
    scope = ctx.options.scope or (ctx.range and 'selection' or 'file'),
    instruction = ctx.text ~= '' and ctx.text or nil,
    options = ctx.options,
  })
end

function handlers.changes(ctx)
  M.review({
    bufnr = ctx.bufnr,
    scope = 'changes',
    instruction = ctx.text ~= '' and ctx.text or nil,
    options = ctx.options,
  })
end

handlers['continue'] = function(ctx)
  local previous = last_run
  if not previous then
    notify('nothing to continue: run an action first', WARN)
    return
  end
  with_instruction(('Claude continue %s: '):format(previous.action), ctx.text, function(instruction)
    local bufnr = api.nvim_buf_is_valid(previous.bufnr) and previous.bufnr or ctx.bufnr
    M.run(previous.action, { bufnr = bufnr, instruction = instruction, session_id = previous.session_id })
  end)
end

function handlers.cancel()
  M.cancel()
end

function handlers.usage(ctx)
  M.usage(ctx.bufnr)
end

--- The `:Claude` command.
---@param cmd table  nvim_create_user_command callback argument
function M.command(cmd)
  local subcommand, text = cmd.args:match('^%s*(%S+)%s*(.-)%s*$')
  local handler = subcommand and handlers[subcommand]
  if not handler then
    notify(
      ('unknown subcommand %q; use one of: %s'):format(subcommand or '', table.concat(M.subcommands, ', ')),
      ERROR
    )
    return
  end
  local options, instruction, err = M.parse_options(subcommand, text)
  if not options then
    notify(err, ERROR)
    return
  end
  local bufnr = api.nvim_get_current_buf()
  local client = client_for(bufnr)
  local range = client and M.command_range(bufnr, cmd, client.offset_encoding) or nil
  handler({ bufnr = bufnr, range = range, text = instruction, options = options })
end

--- Completion for `:Claude`: the subcommand first, then its `key=` options and their values
--- while only options precede the cursor (after them comes the free-text instruction).
function M.complete(arg_lead, cmdline, cursor)
  local before = cmdline:sub(1, cursor)
  local without_range = before:gsub("^%s*[%d,.'<>%%$]*", '')
  local words = vim.split(vim.trim(without_range), '%s+')
  local typing_subcommand = #words < 2 or (#words == 2 and not before:match('%s$'))
  if typing_subcommand then
    return vim.tbl_filter(function(name)
      return vim.startswith(name, arg_lead)
    end, M.subcommands)
  end
  local allowed = M.option_values[words[2]]
  if not allowed then
    return {}
  end
  -- Only options so far (the word being typed aside): more may follow.
  local last_done = before:match('%s$') and #words or #words - 1
  for index = 3, last_done do
    if not words[index]:match('^%a+=') then
      return {}
    end
  end
  local key, partial = arg_lead:match('^(%a+)=(.*)$')
  if key then
    local values = allowed[key]
    if type(values) ~= 'table' then
      return {}
    end
    return vim.tbl_map(function(value)
      return key .. '=' .. value
    end, vim.tbl_filter(function(value)
      return vim.startswith(value, partial)
    end, values))
  end
  local names = vim.tbl_filter(function(name)
    return vim.startswith(name, arg_lead)
  end, vim.tbl_keys(allowed))
  table.sort(names)
  return vim.tbl_map(function(name)
    return name .. '='
  end, names)
end

--- <Plug> mappings: normal mode acts on the file, visual mode on the selection.
local plug_mappings = {
  ClaudeGenerate = 'generate',
  ClaudeAnalyze = 'analyze',
  ClaudeRefactor = 'refactor',
  ClaudeReview = 'review',
  ClaudeChanges = 'changes',
  ClaudeContinue = 'continue',
  ClaudeCancel = 'cancel',
  ClaudeUsage = 'usage',
}

--- Create `:Claude` and the <Plug> mappings (idempotent).
function M.create()
  api.nvim_create_user_command('Claude', M.command, {
    nargs = '+',
    range = true,
    complete = M.complete,
    desc = 'claude-lsp: ' .. table.concat(M.subcommands, '|'),
  })
  for name, subcommand in pairs(plug_mappings) do
    local lhs = ('<Plug>(%s)'):format(name)
    vim.keymap.set('n', lhs, ('<Cmd>Claude %s<CR>'):format(subcommand), { desc = 'Claude ' .. subcommand })
    -- ':' in visual mode inserts '<,'>, so the selection becomes the command's range.
    vim.keymap.set('x', lhs, (':Claude %s<CR>'):format(subcommand), { silent = true, desc = 'Claude ' .. subcommand })
  end
end

return M
