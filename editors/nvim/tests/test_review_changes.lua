-- `delivery = "review"` as a user meets it in Neovim with no plugin code of its own: a
-- refactor started from a code action is not applied but proposed hunk by hunk, each an
-- information diagnostic with code actions; one is applied, the other discarded, through
-- `vim.lsp.buf.code_action()` (driver.lua), against the real server and CLI
-- (test_review_changes.json: Read, then Write with two changed blocks).
local D = dofile(vim.env.CLAUDE_LSP_REPO .. '/editors/nvim/tests/driver.lua')
local H = D.H

local TEXT = {
  '# claude: make ONE and TWO ten times bigger',
  'ONE = 1',
  '',
  'TWO = 2',
  '',
  'THREE = 3',
}

local wait_for_diagnostics, code_action = D.wait_for_diagnostics, D.code_action

D.setup_plugin({ settings = { delivery = 'review' } })

local dir = H.workspace('review_changes', { ['consts.py'] = table.concat(TEXT, '\n') .. '\n' })
local path = dir .. '/consts.py'

D.run({
  { 'a refactor in review delivery proposes each hunk as a diagnostic and edits nothing', function()
    D.type(':cd ' .. dir .. '<CR>')
    D.open(path)
    D.type('gg')
    code_action('Claude: make ONE and TWO ten times bigger')
    local proposed = wait_for_diagnostics(2)
    D.wait_for_runs()
    H.eq(0, proposed[1].lnum, 'the first hunk: the comment and ONE')
    H.eq(3, proposed[2].lnum, 'the second hunk: TWO')
    for _, diagnostic in ipairs(proposed) do
      H.eq(vim.diagnostic.severity.INFO, diagnostic.severity, 'proposed changes are information')
      H.eq('claude', diagnostic.source, 'the diagnostic source')
    end
    H.truthy(proposed[1].message:find('ONE = 10', 1, true), proposed[1].message)
    H.truthy(proposed[2].message:find('TWO = 20', 1, true), proposed[2].message)
    H.eq(TEXT, D.lines(), 'nothing applied yet')
  end },

  { 'apply this change applies that hunk alone', function()
    D.type('4G')
    code_action('Claude: apply this change')
    D.wait_for_lines(path, {
      '# claude: make ONE and TWO ten times bigger',
      'ONE = 1',
      '',
      'TWO = 20',
      '',
      'THREE = 3',
    })
    local left = wait_for_diagnostics(1)
    H.eq(0, left[1].lnum, 'the other hunk stays where it is')
  end },

  { 'discard this change drops the other hunk and leaves its lines alone', function()
    D.type('gg')
    code_action('Claude: discard this change')
    wait_for_diagnostics(0)
    H.eq('ONE = 1', D.lines()[2], 'ONE is unchanged')
    H.eq('TWO = 20', D.lines()[4], 'the applied hunk stays applied')
    H.eq(table.concat(TEXT, '\n') .. '\n', H.read_file(path), 'the file on disk is unsaved')
  end },
})
