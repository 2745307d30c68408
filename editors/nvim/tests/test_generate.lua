-- Generate that creates a file, as a user types it (driver.lua), against the real server and CLI
-- (test_generate.json: Claude writes greet.py). The plugin's client announces documentChanges and
-- the create/rename/delete operations Neovim applies, so the new file arrives as a buffer.
local D = dofile(vim.env.CLAUDE_LSP_REPO .. '/editors/nvim/tests/driver.lua')
local H = D.H

local GREET = { 'def greet(name):', '    return f"Hello, {name}!"' }

local function workspace(name)
  local dir = H.workspace(name, { ['main.py'] = '# claude: add a greet module\nprint("hi")\n' })
  D.type(':cd ' .. dir .. '<CR>')
  D.open(dir .. '/main.py')
  D.type(':messages clear<CR>')
  return dir
end

D.setup_plugin()

D.run({
  { ':Claude generate creates the new file as a buffer', function()
    local dir = workspace('generate')
    D.type(':Claude generate add a greet module<CR>')
    D.wait_for_runs()
    D.wait_for_mode('n')
    D.wait_for_lines(dir .. '/greet.py', GREET)
    H.eq({ 'Claude: generate: edited 1 file · Created greet.py.' }, D.messages(), ':messages')
    -- Written, the new file holds exactly what Claude wrote.
    D.type(':buffer greet.py<CR>:write<CR>')
    H.wait_for('greet.py to be written', function()
      return H.read_optional(dir .. '/greet.py') == table.concat(GREET, '\n') .. '\n'
    end)
  end },

  { 'a code action that creates a file goes through the preview', function()
    D.lua("require('claude_lsp').options.preview = true")
    local dir = workspace('action')
    D.type(':lua vim.lsp.buf.code_action()<CR>')
    D.choose('Claude: add a greet module')
    local screen = D.wait_for_screen('Apply the edit from Claude?')
    H.truthy(screen:find('new file: greet.py', 1, true), 'the preview names the new file:\n' .. screen)
    H.truthy(screen:find('+    return f"Hello, {name}!"', 1, true), 'the preview shows its text:\n' .. screen)
    H.eq(-1, D.lua('return vim.fn.bufnr(...)', dir .. '/greet.py'), 'no buffer before the answer')
    D.choose('Apply')
    D.wait_for_lines(dir .. '/greet.py', GREET)
    -- The server's answer ends the run: the one message, no Press ENTER.
    D.wait_for_screen('Claude: Created greet.py.')
    D.wait_for_mode('n')
    H.eq({ 'Claude: Created greet.py.' }, D.messages(), ':messages')
  end },

  { 'a code action edit discarded in the preview is not applied, and the server is told why', function()
    local dir = workspace('discard')
    D.type(':lua vim.lsp.buf.code_action()<CR>')
    D.choose('Claude: add a greet module')
    D.wait_for_screen('+    return f"Hello, {name}!"')
    D.choose('Discard')
    -- The server then shows its answer (after the warning below).
    D.wait_for_screen('Claude: Created greet.py.')
    D.wait_for_mode('n')
    H.eq('Claude: the refactor edit was not applied: discarded in the preview', D.messages()[1], ':messages')
    H.eq(-1, D.lua('return vim.fn.bufnr(...)', dir .. '/greet.py'), 'no new buffer')
  end },
})
