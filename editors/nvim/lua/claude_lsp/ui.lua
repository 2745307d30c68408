-- Messages, windows and buffers: notifications, the answer window, the diff preview of an edit.
local M = {}

local api = vim.api

--- `text` on one line that fits the command line: a longer message would wait for "Press ENTER".
---@param text string
---@return string
function M.fit(text)
  text = vim.trim(text:gsub('%s*\n%s*', ' '))
  local width = math.max(vim.v.echospace, 10)
  if vim.fn.strdisplaywidth(text) <= width then
    return text
  end
  return vim.fn.strcharpart(text, 0, width - 1) .. '…'
end

--- One notification, "Claude: …". Information is fitted to one line; warnings and errors are
--- shown whole (they are what the user must read).
---@param message string
---@param level? integer
function M.notify(message, level)
  level = level or vim.log.levels.INFO
  local text = vim.startswith(message, 'Claude') and message or 'Claude: ' .. message
  if level < vim.log.levels.WARN then
    text = M.fit(text)
  end
  vim.notify(text, level, { title = 'claude-lsp' })
end

--- Open a scratch buffer holding `lines` (markdown by default) in a float or a split.
--- `q` closes it. Returns the buffer and window.
---@param title string
---@param lines string[]
---@param opts { output: 'float'|'split'|'vsplit', filetype?: string }
---@return integer bufnr, integer winid
function M.show_scratch(title, lines, opts)
  local bufnr = api.nvim_create_buf(false, true)
  api.nvim_buf_set_lines(bufnr, 0, -1, false, lines)
  vim.bo[bufnr].bufhidden = 'wipe'
  vim.bo[bufnr].modifiable = false
  vim.bo[bufnr].filetype = opts.filetype or 'markdown'
  pcall(api.nvim_buf_set_name, bufnr, ('claude://%s/%d'):format(title, bufnr))

  local winid
  if opts.output == 'float' then
    local width = math.max(40, math.floor(vim.o.columns * 0.8))
    local height = math.max(5, math.floor((vim.o.lines - vim.o.cmdheight) * 0.7))
    width = math.min(width, vim.o.columns)
    height = math.min(height, math.max(1, vim.o.lines - vim.o.cmdheight - 2))
    winid = api.nvim_open_win(bufnr, true, {
      relative = 'editor',
      width = width,
      height = height,
      row = math.floor((vim.o.lines - height) / 2) - 1,
      col = math.floor((vim.o.columns - width) / 2),
      style = 'minimal',
      border = 'rounded',
      title = ' ' .. title .. ' ',
      title_pos = 'center',
    })
    vim.wo[winid].wrap = true
  else
    winid = api.nvim_open_win(bufnr, true, { split = opts.output == 'vsplit' and 'right' or 'below', win = 0 })
  end
  vim.wo[winid].conceallevel = 2
  vim.keymap.set('n', 'q', function()
    if api.nvim_win_is_valid(winid) then
      api.nvim_win_close(winid, true)
    end
  end, { buffer = bufnr, nowait = true, desc = 'Close the Claude window' })
  return bufnr, winid
end

local function display_path(uri)
  local path = vim.uri_to_fname(uri)
  return vim.fs.relpath(vim.fn.getcwd(), path) or path
end

--- The current text of `uri` as lines: its buffer when loaded, else the file on disk.
local function current_lines(uri)
  local path = vim.uri_to_fname(uri)
  local bufnr = vim.fn.bufnr(path)
  if bufnr ~= -1 and api.nvim_buf_is_loaded(bufnr) then
    return api.nvim_buf_get_lines(bufnr, 0, -1, false)
  end
  if vim.fn.filereadable(path) == 1 then
    return vim.fn.readfile(path)
  end
  return {}
end

--- `lines` with `edits` applied, computed in a throw-away buffer so nothing visible changes.
local function edited_lines(lines, edits, encoding)
  local scratch = api.nvim_create_buf(false, true)
  api.nvim_buf_set_lines(scratch, 0, -1, false, lines)
  local ok, err = pcall(vim.lsp.util.apply_text_edits, vim.deepcopy(edits), scratch, encoding)
  local result = api.nvim_buf_get_lines(scratch, 0, -1, false)
  api.nvim_buf_delete(scratch, { force = true })
  if not ok then
    error(err, 0)
  end
  return result
end

local diff = vim.text and vim.text.diff or vim.diff

--- Lines as file text ending in a newline ("" stays empty; an edit that ends in "\n" leaves an
--- empty last buffer line, which is that newline, not another line).
local function as_text(lines)
  local text = table.concat(lines, '\n')
  if text ~= '' and text:sub(-1) ~= '\n' then
    text = text .. '\n'
  end
  return text
end

local function unified_diff(path, old_lines, new_lines)
  local old_text, new_text = as_text(old_lines), as_text(new_lines)
  local hunks = diff(old_text, new_text, { ctxlen = 3 })
  if type(hunks) ~= 'string' or hunks == '' then
    return {}
  end
  local lines = { '--- a/' .. path, '+++ b/' .. path }
  vim.list_extend(lines, vim.split(hunks, '\n', { plain = true, trimempty = true }))
  return lines
end

--- A unified diff of everything `edit` (a WorkspaceEdit) would do, as lines.
---@param edit table
---@param encoding string
---@return string[]
function M.edit_diff(edit, encoding)
  local lines = {}
  -- Files created earlier in this edit start empty, whatever is on disk.
  local created = {}
  local function text_edit(uri, edits)
    local old = created[uri] and {} or current_lines(uri)
    vim.list_extend(lines, unified_diff(display_path(uri), old, edited_lines(old, edits, encoding)))
  end
  if edit.documentChanges then
    for _, change in ipairs(edit.documentChanges) do
      if change.kind == 'create' then
        created[change.uri] = true
        table.insert(lines, 'new file: ' .. display_path(change.uri))
      elseif change.kind == 'rename' then
        table.insert(lines, ('rename: %s → %s'):format(display_path(change.oldUri), display_path(change.newUri)))
      elseif change.kind == 'delete' then
        table.insert(lines, 'delete: ' .. display_path(change.uri))
      elseif change.textDocument then
        text_edit(change.textDocument.uri, change.edits or {})
      end
    end
  elseif edit.changes then
    for _, uri in ipairs(vim.tbl_keys(edit.changes)) do
      text_edit(uri, edit.changes[uri])
    end
  end
  return lines
end

--- Apply `edit` (a WorkspaceEdit) to the buffers; raises what Neovim raises.
---@param edit table
---@param encoding string
function M.apply(edit, encoding)
  vim.lsp.util.apply_workspace_edit(edit, encoding)
  -- A created file's text ends in a newline, which an empty buffer keeps as an extra empty last
  -- line (written, the file would end in two); the buffer's 'eol' stands for that newline.
  for _, change in ipairs(edit.documentChanges or {}) do
    local bufnr = change.kind == 'create' and vim.fn.bufnr(vim.uri_to_fname(change.uri)) or -1
    if bufnr ~= -1 and api.nvim_buf_line_count(bufnr) > 1 and api.nvim_buf_get_lines(bufnr, -2, -1, false)[1] == '' then
      api.nvim_buf_set_lines(bufnr, -2, -1, false, {})
    end
  end
end

--- How many files `edit` touches.
---@param edit table
---@return integer
function M.edit_file_count(edit)
  local files = {}
  for _, change in ipairs(edit.documentChanges or {}) do
    local uri = change.uri or change.newUri or (change.textDocument and change.textDocument.uri)
    if uri then
      files[uri] = true
    end
  end
  for uri in pairs(edit.changes or {}) do
    files[uri] = true
  end
  return vim.tbl_count(files)
end

--- Show the diff of `edit` and ask whether to apply it; `on_choice(true|false)`.
---@param edit table
---@param encoding string
---@param opts { output: 'float'|'split'|'vsplit' }
---@param on_choice fun(apply: boolean)
function M.confirm_edit(edit, encoding, opts, on_choice)
  local ok, lines = pcall(M.edit_diff, edit, encoding)
  if not ok then
    M.notify('cannot preview the edit: ' .. tostring(lines), vim.log.levels.ERROR)
    on_choice(false)
    return
  end
  if #lines == 0 then
    on_choice(true)
    return
  end
  local _, winid = M.show_scratch('Claude edit preview', lines, { output = opts.output, filetype = 'diff' })
  -- The default vim.ui.select blocks in a prompt before Neovim draws again: draw the diff first.
  vim.cmd.redraw()
  vim.ui.select({ 'Apply', 'Discard' }, { prompt = 'Apply the edit from Claude?' }, function(choice)
    if api.nvim_win_is_valid(winid) then
      api.nvim_win_close(winid, true)
    end
    -- Clear the prompt, or the next message scrolls under it and waits for "Press ENTER".
    vim.cmd.redraw()
    on_choice(choice == 'Apply')
  end)
end

--- Findings of an analyze answer as markdown lines (`path:line` severity, category: title).
--- Review findings are the server's: they arrive as diagnostics.
---@param findings table[]
---@return string[]
function M.findings_lines(findings)
  local lines = {}
  for _, finding in ipairs(findings) do
    if type(finding.range) == 'table' and type(finding.uri) == 'string' then
      table.insert(lines, ('- `%s:%d` %s, %s: %s'):format(
        display_path(finding.uri),
        finding.range.start.line + 1,
        tostring(finding.severity),
        tostring(finding.category),
        tostring(finding.title)
      ))
    end
  end
  return lines
end

return M
