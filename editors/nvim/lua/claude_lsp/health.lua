-- `:checkhealth claude_lsp`
local M = {}

local health = vim.health

local function trimmed_lines(text)
  return vim.split(vim.trim(text or ''), '\n', { plain = true, trimempty = true })
end

local function check_neovim()
  health.start('claude-lsp: Neovim')
  local version = vim.version()
  local text = ('%d.%d.%d'):format(version.major, version.minor, version.patch)
  if vim.fn.has('nvim-0.11') == 1 then
    health.ok('Neovim ' .. text)
  else
    health.error('Neovim ' .. text .. ' is too old', { 'claude-lsp needs Neovim 0.11 or newer (vim.lsp.config)' })
  end
end

---@return string? executable
local function check_server(name)
  health.start('claude-lsp: server')
  local config = vim.lsp.config[name]
  local cmd = config and config.cmd
  if type(cmd) ~= 'table' or type(cmd[1]) ~= 'string' then
    health.warn('the `cmd` of the claude_lsp config is not a command list; cannot check the server')
    return nil
  end
  local executable = vim.fn.exepath(cmd[1])
  if executable == '' then
    health.error(('`%s` was not found or is not executable'):format(cmd[1]), {
      'Build it: `cargo install --path .` in the claude-lsp repository (puts `claude-lsp` in ~/.cargo/bin)',
      "Or point the plugin at it: require('claude_lsp').setup({ server_path = '/path/to/claude-lsp' })",
    })
    return nil
  end
  health.ok('server: ' .. executable)

  local version = vim.system({ executable, '--version' }, { text = true }):wait(10000)
  if version.code == 0 then
    health.ok('`claude-lsp --version`: ' .. vim.trim(version.stdout or ''))
  else
    health.error(('`%s --version` failed (exit %d)'):format(executable, version.code), trimmed_lines(version.stderr))
    return executable
  end

  -- The doctor reads no LSP settings: give it the CLI the plugin is set up with.
  local settings = type(config.init_options) == 'table' and config.init_options or {}
  local cli = type(settings.cliPath) == 'string' and { CLAUDE_LSP_CLI = settings.cliPath } or nil
  local doctor = vim.system({ executable, 'doctor' }, { text = true, env = cli }):wait(30000)
  local report = trimmed_lines((doctor.stdout or '') .. '\n' .. (doctor.stderr or ''))
  if doctor.code == 0 then
    health.ok('`claude-lsp doctor` passed')
    for _, line in ipairs(report) do
      health.info(line)
    end
  else
    health.warn(('`claude-lsp doctor` reported problems (exit %d)'):format(doctor.code), report)
  end
  return executable
end

local function check_clients(name)
  health.start('claude-lsp: client')
  local clients = vim.lsp.get_clients({ name = name })
  if #clients == 0 then
    health.warn('no claude-lsp client is running', {
      "Call require('claude_lsp').setup() (or vim.lsp.enable('claude_lsp')) and open a file",
      'See `:help claude_lsp-setup`',
    })
    return
  end
  for _, client in ipairs(clients) do
    local experimental = client.server_capabilities and client.server_capabilities.experimental
    local info = type(experimental) == 'table' and experimental.claudeLsp
    local version = type(info) == 'table' and info.version or 'unknown'
    health.ok(('client %d running: server %s, root %s, position encoding %s'):format(
      client.id,
      tostring(version),
      client.root_dir or '(single file)',
      client.offset_encoding
    ))
    local attached = vim.tbl_count(client.attached_buffers)
    if attached > 0 then
      health.ok(('attached to %d buffer%s'):format(attached, attached == 1 and '' or 's'))
    else
      health.warn('attached to no buffer', { 'The server attaches to buffers that have a filetype' })
    end
  end
end

function M.check()
  local name = require('claude_lsp').client_name
  check_neovim()
  check_server(name)
  check_clients(name)
end

return M
