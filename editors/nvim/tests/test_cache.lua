-- The server's result cache as a Neovim user meets it (driver.lua), against the real server and
-- CLI (test_cache.json: every run answers the same two paragraphs, shown in a window): an
-- unchanged `:Claude analyze` or `:Claude review` is answered from the cache with no API call,
-- and `noCache=true` makes it a real run again.
local D = dofile(vim.env.CLAUDE_LSP_REPO .. '/editors/nvim/tests/driver.lua')
local H = D.H

--- Run `command`, wait for its answer in its window and close it; the API requests it made.
local function run(command)
  local before = #H.recorded_requests()
  D.type(command .. '<CR>')
  D.wait_for_runs()
  D.wait_for_screen('The function adds its two arguments.')
  D.wait_until('the answer window to be current', [[return vim.bo.filetype == 'markdown']])
  D.type('q')
  D.wait_until('the code to be current', [[return vim.bo.filetype == 'rust']])
  D.wait_for_mode('n')
  return #H.recorded_requests() - before
end

D.setup_plugin()

local dir = H.workspace('cache', { ['add.rs'] = 'fn add(a: u32, b: u32) -> u32 {\n    a + b\n}\n' })

D.run({
  { 'an analyze is a real run; the same analyze again comes from the cache', function()
    D.type(':cd ' .. dir .. '<CR>')
    D.open(dir .. '/add.rs')
    H.truthy(run(':Claude analyze') > 0, 'the first analyze called the API')
    H.eq(0, run(':Claude analyze'), 'API requests of the unchanged analyze')
  end },

  { 'analyze noCache=true makes a real run of the same analyze', function()
    H.truthy(run(':Claude analyze noCache=true') > 0, 'the analyze with noCache=true called the API')
  end },

  { 'the same holds for review: cached, then noCache=true a real run', function()
    H.truthy(run(':Claude review') > 0, 'the first review called the API')
    H.eq(0, run(':Claude review'), 'API requests of the unchanged review')
    H.truthy(run(':Claude review noCache=true') > 0, 'the review with noCache=true called the API')
  end },
})
