-- `:Claude cancel` while the model is streaming slowly (test_cancel.json): no edit, the request
-- answers RequestCancelled, and no `claude` process is left.
local H = dofile(vim.env.CLAUDE_LSP_REPO .. '/editors/nvim/tests/helpers.lua')
local cancel = dofile(H.repo .. '/editors/nvim/tests/cancel_case.lua')

H.setup_plugin()
H.run({ { 'cancel during a slow stream stops the run and leaves the buffer alone', cancel(H, 'slow') } })
