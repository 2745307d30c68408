// VS Code settings (`claude.*`) → the server's settings object. Pure (no `vscode` import).
//
// Only the values the user actually set are sent: the server owns the defaults (src/model/settings/schema.rs)
// and validates every value, warning about bad ones, so the two never disagree about either.

/** The configuration section, shared by VS Code and the server. */
export const SECTION = 'claude';

/** Every server setting, camelCase, as in SETTING_NAMES of src/model/settings/schema.rs (minus `serverPath`). */
export const SERVER_SETTINGS = [
    'cliPath',
    'model',
    'fallbackModel',
    'maxTurns',
    'appendSystemPrompt',
    'allowedTools',
    'disallowedTools',
    'timeoutSecs',
    'idleTimeoutSecs',
    'maxConcurrent',
    'env',
    'warmPool',
    'poolIdleSecs',
    'maxBudgetUsd',
    'dailyBudgetUsd',
    'logLevel',
    'logFile',
    'permissionMode',
    'permissionTimeoutSecs',
    'additionalDirectories',
    'mcpServers',
    'requestsPerMinute',
    'maxRetries',
    'sessionIdleSecs',
    'liveSessions',
    'maxIdleMemoryMb',
    'stagingMaxCopyMb',
    'maxRetriesCli',
    'circuitFailureThreshold',
    'circuitCooldownSecs',
    'dangerouslyAllowUnsandboxedBash',
    'delivery',
    'systemPrompt',
    'agents',
    'resultCache',
] as const;

export type ServerSettingName = (typeof SERVER_SETTINGS)[number];

/** Settings that only the extension reads; never sent to the server. */
export const CLIENT_SETTINGS = ['serverPath', 'trace.server'] as const;

/** The shape of `WorkspaceConfiguration.inspect(key)`, reduced to what matters here. */
export interface Inspection {
    globalValue?: unknown;
    workspaceValue?: unknown;
    workspaceFolderValue?: unknown;
    globalLanguageValue?: unknown;
    workspaceLanguageValue?: unknown;
    workspaceFolderLanguageValue?: unknown;
}

/** The value the user set, most specific scope first; `undefined` when only the default applies. */
export function explicitValue(inspection: Inspection | undefined): unknown {
    if (inspection === undefined) {
        return undefined;
    }
    const scopes = [
        inspection.workspaceFolderLanguageValue,
        inspection.workspaceFolderValue,
        inspection.workspaceLanguageValue,
        inspection.workspaceValue,
        inspection.globalLanguageValue,
        inspection.globalValue,
    ];
    return scopes.find((value) => value !== undefined);
}

/** Settings taken from the user's own (global) settings only: a workspace cannot weaken containment. */
export const USER_ONLY_SETTINGS: readonly ServerSettingName[] = ['dangerouslyAllowUnsandboxedBash'];

/**
 * The server's settings object from the user's explicit settings. `inspect` answers
 * `WorkspaceConfiguration.inspect` for a key of the `claude` section. `null` counts as unset.
 */
export function serverSettings(inspect: (key: ServerSettingName) => Inspection | undefined): Record<string, unknown> {
    const settings: Record<string, unknown> = {};
    for (const key of SERVER_SETTINGS) {
        const inspection = inspect(key);
        const value = USER_ONLY_SETTINGS.includes(key) ? inspection?.globalValue : explicitValue(inspection);
        if (value !== undefined && value !== null) {
            settings[key] = value;
        }
    }
    return settings;
}

/**
 * The executable to start: `claude.serverPath` when set (a leading `~/` is the home dir), else the
 * server the VSIX brings (`bundled`, when it is a platform-specific one), else `claude-lsp` from PATH.
 */
export function serverCommand(serverPath: unknown, homeDir: string, bundled: string | undefined): string {
    if (typeof serverPath !== 'string' || serverPath.trim() === '') {
        return bundled ?? 'claude-lsp';
    }
    const path = serverPath.trim();
    if (path === '~') {
        return homeDir;
    }
    if (path.startsWith('~/')) {
        return `${homeDir}/${path.slice(2)}`;
    }
    return path;
}
