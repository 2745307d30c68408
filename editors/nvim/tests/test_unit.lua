-- The plugin's pure parts, without a server: ranges, diffs, findings, formatting, completion.
local H = dofile(vim.env.CLAUDE_LSP_REPO .. '/editors/nvim/tests/helpers.lua')
vim.opt.rtp:prepend(H.repo .. '/editors/nvim')

local commands = require('claude_lsp.commands')
local ui = require('claude_lsp.ui')
local progress = require('claude_lsp.progress')

local function scratch(lines)
  local bufnr = vim.api.nvim_create_buf(true, false)
  vim.api.nvim_buf_set_lines(bufnr, 0, -1, false, lines)
  vim.api.nvim_set_current_buf(bufnr)
  return bufnr
end

local function pos(line, character)
  return { line = line, character = character }
end

H.run({
  { 'lsp/claude_lsp.lua reads vim.g.claude_lsp for vim.lsp.enable without setup()', function()
    vim.g.claude_lsp = { server_path = '/opt/claude-lsp', settings = { model = 'sonnet' } }
    local config = vim.lsp.config.claude_lsp
    H.eq({ '/opt/claude-lsp' }, config.cmd)
    H.eq({ '.git' }, config.root_markers)
    H.eq(nil, config.filetypes, 'every filetype')
    H.eq({ model = 'sonnet' }, config.init_options)
    H.eq({ claude = { model = 'sonnet' } }, config.settings)
  end },

  { 'setup() validates its options and configures the client', function()
    local claude_lsp = require('claude_lsp')
    claude_lsp.setup({ output = 'sideways', enable = false })
    H.truthy(H.notifications[1] and H.notifications[1].message:find("invalid setup%(%) option: output"),
      vim.inspect(H.notifications))
    H.notifications = {}
    claude_lsp.setup({ server_path = '/bin/cat', settings = { timeoutSecs = 9 }, enable = false, filetypes = { 'rust' } })
    H.eq({}, H.notifications, 'notifications of a valid setup')
    local config = vim.lsp.config.claude_lsp
    H.eq({ '/bin/cat' }, config.cmd)
    H.eq({ 'rust' }, config.filetypes)
    H.eq({ timeoutSecs = 9 }, config.init_options)
    H.eq(2, vim.fn.exists(':Claude'), ':Claude exists')
  end },

  { 'no range without a command range', function()
    local bufnr = scratch({ 'a' })
    H.eq(nil, commands.command_range(bufnr, { range = 0, line1 = 1, line2 = 1 }, 'utf-16'))
  end },

  { 'a line range covers whole lines', function()
    local bufnr = scratch({ 'one', 'two', 'three' })
    H.eq({ start = pos(0, 0), ['end'] = pos(1, 3) },
      commands.command_range(bufnr, { range = 2, line1 = 1, line2 = 2 }, 'utf-16'))
  end },

  { 'a charwise selection is exact, in the negotiated encoding', function()
    local bufnr = scratch({ 'x = "héllo wörld"', 'y' })
    -- Select `héllo wö` (bytes 5..14, the ö being two bytes).
    vim.api.nvim_win_set_cursor(0, { 1, 5 })
    vim.cmd('normal! v')
    vim.api.nvim_win_set_cursor(0, { 1, 13 })
    vim.cmd('normal! \27')
    local cmd = { range = 2, line1 = 1, line2 = 1 }
    H.eq({ start = pos(0, 5), ['end'] = pos(0, 15) }, commands.command_range(bufnr, cmd, 'utf-8'))
    H.eq({ start = pos(0, 5), ['end'] = pos(0, 13) }, commands.command_range(bufnr, cmd, 'utf-16'))
    H.eq({ start = pos(0, 5), ['end'] = pos(0, 13) }, commands.command_range(bufnr, cmd, 'utf-32'))
  end },

  { 'a linewise selection is whole lines', function()
    local bufnr = scratch({ 'one', 'twö', 'three' })
    vim.cmd('normal! ggjVj\27')
    H.eq({ start = pos(1, 0), ['end'] = pos(2, 5) },
      commands.command_range(bufnr, { range = 2, line1 = 2, line2 = 3 }, 'utf-16'))
  end },

  { 'metadata reads as a short summary', function()
    H.eq('3 turns · 1.2k tokens · $0.0123',
      commands.format_metadata({ numTurns = 3, inputTokens = 1000, outputTokens = 234, costUsd = 0.0123 }))
    H.eq('1 turn', commands.format_metadata({ numTurns = 1, inputTokens = 0, outputTokens = 0, costUsd = 0 }))
    H.eq('', commands.format_metadata(nil))
  end },

  { 'usage totals are listed one per line', function()
    H.eq({ 'costUsd: $0.5000', 'runs: 2' }, commands.format_usage({ runs = 2, costUsd = 0.5 }))
  end },

  { 'the diff preview shows edits, new files and deletions without touching buffers', function()
    local dir = H.tmp .. '/preview'
    vim.fn.mkdir(dir, 'p')
    vim.fn.writefile({ 'fn main() {', '    println!("hello");', '}' }, dir .. '/main.rs')
    vim.cmd.cd(dir)
    local main_uri = vim.uri_from_fname(dir .. '/main.rs')
    local new_uri = vim.uri_from_fname(dir .. '/new.rs')
    local edit = {
      documentChanges = {
        { textDocument = { uri = main_uri, version = vim.NIL },
          edits = { { range = { start = pos(1, 14), ['end'] = pos(1, 19) }, newText = 'hi' } } },
        { kind = 'create', uri = new_uri },
        { textDocument = { uri = new_uri, version = vim.NIL },
          edits = { { range = { start = pos(0, 0), ['end'] = pos(0, 0) }, newText = 'pub fn f() {}\n' } } },
        { kind = 'delete', uri = vim.uri_from_fname(dir .. '/old.rs') },
      },
    }
    local buffers_before = #vim.api.nvim_list_bufs()
    H.eq({
      '--- a/main.rs', '+++ b/main.rs', '@@ -1,3 +1,3 @@', ' fn main() {', '-    println!("hello");',
      '+    println!("hi");', ' }',
      'new file: new.rs',
      '--- a/new.rs', '+++ b/new.rs', '@@ -0,0 +1 @@', '+pub fn f() {}',
      'delete: old.rs',
    }, ui.edit_diff(edit, 'utf-16'))
    H.eq(buffers_before, #vim.api.nvim_list_bufs(), 'buffer count after the preview')
    H.eq(3, ui.edit_file_count(edit))
  end },

  { 'analyze findings read as markdown lines, paths relative to the working directory', function()
    local uri = vim.uri_from_fname(vim.fn.getcwd() .. '/src/finding.rs')
    H.eq({ '- `src/finding.rs:3` error, bug: Unknown name' }, ui.findings_lines({
      { uri = uri, range = { start = pos(2, 14), ['end'] = pos(2, 15) }, severity = 'error',
        category = 'bug', title = 'Unknown name' },
      { title = 'no range: left out' },
    }))
  end },

  { 'a message is fitted to one line of the command line', function()
    H.eq('Claude: a b', ui.fit('Claude: a\n  b'))
    local long = ui.fit(('x'):rep(vim.o.columns * 2))
    H.eq(vim.v.echospace, vim.fn.strdisplaywidth(long), 'the width of a long message')
    H.truthy(vim.endswith(long, '…'), long)
  end },

  { 'progress values read as one line', function()
    H.eq('Claude: refactor — Reading src/lib.rs (40%)',
      progress.format({ kind = 'report', title = 'Claude: refactor', message = 'Reading src/lib.rs', percentage = 40 }))
    H.eq('Claude: refactor — 1 edit', progress.format({ kind = 'end', title = 'Claude: refactor', message = '1 edit', percentage = 100 }))
    H.eq(nil, progress.format({ kind = 'report' }))
  end },

  { 'completion offers subcommands only in first position', function()
    H.eq({ 'refactor', 'review' }, commands.complete('re', 'Claude re', 9))
    H.eq(commands.subcommands, commands.complete('', "'<,'>Claude ", 12))
    H.eq({ 'model=' }, commands.complete('', 'Claude refactor ', 16))
  end },

  { 'completion offers options and their values after the subcommand', function()
    H.eq({ 'minSeverity=' }, commands.complete('mi', 'Claude review mi', 16))
    H.eq({ 'minSeverity=warning' }, commands.complete('minSeverity=w', 'Claude review minSeverity=w', 27))
    H.eq({ 'scope=folder', 'scope=workspace' }, commands.complete('scope=', 'Claude analyze scope=', 21))
    H.eq({ 'fix=true' }, commands.complete('fix=t', 'Claude review fix=true depth=deep fix=t', 39))
    H.eq({}, commands.complete('model=', 'Claude review model=', 20), 'a model is free text')
    H.eq({}, commands.complete('', 'Claude review look at the loop ', 31), 'the instruction began')
    H.eq({}, commands.complete('', 'Claude cancel ', 14))
    H.eq({ 'directory=', 'model=' }, commands.complete('', 'Claude generate ', 16))
    H.eq({ 'noCache=' }, commands.complete('no', 'Claude analyze no', 17))
    H.eq({ 'noCache=true' }, commands.complete('noCache=t', 'Claude changes noCache=t', 24))
    H.eq({}, commands.complete('no', 'Claude refactor no', 18), 'an edit run is never cached')
  end },

  { 'leading key=value words are options, the rest is the instruction', function()
    local options, instruction = commands.parse_options('review', 'minSeverity=warning fix=true look at x=1')
    H.eq({ minSeverity = 'warning', fix = true }, options)
    H.eq('look at x=1', instruction)
    options, instruction = commands.parse_options('analyze', 'scope=folder directory=src depth=deep')
    H.eq({ scope = 'folder', directory = 'src', depth = 'deep' }, options)
    H.eq('', instruction)
    options = commands.parse_options('review', 'noCache=true')
    H.eq({ noCache = true }, options)
    local _, _, err = commands.parse_options('review', 'minSeverity=loud')
    H.eq('minSeverity=loud: expected one of error, warning, info, hint', err)
    _, _, err = commands.parse_options('refactor', 'depth=deep rename it')
    H.eq('refactor takes no option "depth" (it takes model)', err)
    _, _, err = commands.parse_options('changes', 'scope=file')
    H.truthy(err and err:find('changes takes no option "scope"'), err)
    options, instruction = commands.parse_options('continue', 'n=0 too')
    H.eq({}, options)
    H.eq('n=0 too', instruction, 'continue takes no options')
  end },

  { 'an unknown subcommand is a clear error', function()
    commands.create()
    H.notifications = {}
    vim.cmd('Claude frobnicate')
    H.truthy(H.notifications[1] and H.notifications[1].message:find('unknown subcommand "frobnicate"'),
      vim.inspect(H.notifications))
  end },

  { 'the help file has unique, resolvable tags', function()
    local doc = H.tmp .. '/doc'
    vim.fn.mkdir(doc, 'p')
    vim.fn.writefile(vim.fn.readfile(H.repo .. '/editors/nvim/doc/claude_lsp.txt'), doc .. '/claude_lsp.txt')
    vim.cmd.helptags(vim.fn.fnameescape(doc))
    local tags = vim.fn.readfile(doc .. '/tags')
    local names = vim.tbl_map(function(line)
      return vim.split(line, '\t')[1]
    end, tags)
    for _, expected in ipairs({ ':Claude', 'claude_lsp.setup()', 'claude_lsp-mappings', ':Claude-cancel' }) do
      H.truthy(vim.tbl_contains(names, expected), expected .. ' missing from ' .. vim.inspect(names))
    end
    -- Every |link| points at a tag of this file or of Neovim's own help.
    local text = table.concat(vim.fn.readfile(doc .. '/claude_lsp.txt'), '\n')
    local known = {}
    for _, file in ipairs({ doc .. '/tags', vim.env.VIMRUNTIME .. '/doc/tags' }) do
      for _, line in ipairs(vim.fn.readfile(file)) do
        known[vim.split(line, '\t')[1]] = true
      end
    end
    for link in text:gmatch('|([^|%s]+)|') do
      H.truthy(known[link], 'unresolved help link |' .. link .. '|')
    end
  end },

  { 'an action without the server attached says so', function()
    scratch({ 'x' })
    H.notifications = {}
    vim.cmd('Claude analyze')
    H.truthy(H.notifications[1] and H.notifications[1].message:find('not attached'), vim.inspect(H.notifications))
  end },
})
