-- `:Claude cancel` while the model is streaming slowly (test_cancel.json): no edit, one message,
-- and no `claude` process is left.
local D = dofile(vim.env.CLAUDE_LSP_REPO .. '/editors/nvim/tests/driver.lua')
local cancel = dofile(D.H.repo .. '/editors/nvim/tests/cancel_case.lua')

D.setup_plugin()
D.run({ { 'cancel during a slow stream stops the run and leaves the buffer alone', cancel(D, 'slow') } })
