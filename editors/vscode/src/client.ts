// The language client: how claude-lsp is started and how settings reach it.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
    CloseAction,
    DidChangeConfigurationNotification,
    LanguageClient,
    ResponseError,
    State,
    type ClientCapabilities,
    type ErrorHandler,
    type LanguageClientOptions,
    type Middleware,
    type ServerOptions,
    type StaticFeature,
} from 'vscode-languageclient/node';

import { SECTION, serverCommand, serverSettings } from './config';

/**
 * Gets the first look at every `workspace/executeCommand` the editor sends (code actions carry
 * commands): answers `undefined` to let the server run it, or a promise to handle it here.
 */
export type CommandInterceptor = (command: string, args: unknown[]) => Promise<unknown> | undefined;

/** The server's settings from the user's explicit `claude.*` settings. */
export function currentSettings(scope?: vscode.Uri): Record<string, unknown> {
    const config = vscode.workspace.getConfiguration(SECTION, scope);
    return serverSettings((key) => config.inspect(key));
}

/** The server a platform-specific VSIX carries (scripts/package.sh puts it there), if this one does. */
function bundledServer(extensionPath: string): string | undefined {
    const file = path.join(extensionPath, 'server', process.platform === 'win32' ? 'claude-lsp.exe' : 'claude-lsp');
    return fs.existsSync(file) ? file : undefined;
}

/** The executable the client starts (see `serverCommand` for the order). */
export function serverExecutable(extensionPath: string): string {
    const serverPath = vscode.workspace.getConfiguration(SECTION).get('serverPath');
    return serverCommand(serverPath, os.homedir(), bundledServer(extensionPath));
}

/** Why `command` cannot be run (a path that is not an executable file, or a name not on `PATH`), or `undefined`. */
export function missingExecutable(command: string): string | undefined {
    const runnable = (file: string): boolean => {
        try {
            fs.accessSync(file, fs.constants.X_OK);
            return fs.statSync(file).isFile();
        } catch {
            return false;
        }
    };
    if (command.includes(path.sep)) {
        return runnable(command) ? undefined : 'no executable file there';
    }
    const dirs = (process.env.PATH ?? '').split(path.delimiter).filter((dir) => dir !== '');
    return dirs.some((dir) => runnable(path.join(dir, command))) ? undefined : 'not found on PATH';
}

export function createClient(
    executable: string,
    outputChannel: vscode.OutputChannel,
    intercept: CommandInterceptor,
): LanguageClient {
    const serverOptions: ServerOptions = { command: executable, args: ['--stdio'] };
    const middleware: Middleware = {
        workspace: {
            // Answer the `claude` section with explicit settings only (see config.ts).
            configuration: async (params, token, next) => {
                const answers: unknown[] | ResponseError = await next(params, token);
                if (answers instanceof ResponseError) {
                    return answers;
                }
                return params.items.map((item, index): unknown =>
                    item.section === SECTION
                        ? currentSettings(item.scopeUri === undefined ? undefined : vscode.Uri.parse(item.scopeUri))
                        : answers[index],
                );
            },
            didChangeConfiguration: async (sections, next) => {
                if (sections === undefined || !sections.includes(SECTION)) {
                    return next(sections);
                }
                await client.sendNotification(DidChangeConfigurationNotification.type, {
                    settings: { [SECTION]: currentSettings() },
                });
            },
        },
        executeCommand: (command, args, next): Promise<unknown> => {
            const handled = intercept(command, args);
            return handled ?? Promise.resolve(next(command, args));
        },
    };
    let crashHandler: ErrorHandler | undefined;
    let ran = false;
    const errorHandler: ErrorHandler = {
        error: (error, message, count) =>
            (crashHandler ??= client.createDefaultErrorHandler()).error(error, message, count),
        // A server that exits before it ever ran is a failed start (reported once, by the
        // extension): restarting it would only fail again, with a toast each time.
        closed: () =>
            ran
                ? (crashHandler ??= client.createDefaultErrorHandler()).closed()
                : { action: CloseAction.DoNotRestart, handled: true },
    };
    const clientOptions: LanguageClientOptions = {
        // Claude works on any file of the workspace, whatever its language.
        documentSelector: [{ scheme: 'file' }],
        initializationOptions: () => currentSettings(),
        // File events (which clear the findings of files changed on disk while not open) come
        // from the watcher the server registers itself, as it does in every editor.
        synchronize: { configurationSection: SECTION },
        outputChannel,
        middleware,
        errorHandler,
    };
    // The middleware and error handler above run only once the client exists.
    const client = new ClaudeLanguageClient(SECTION, 'Claude', serverOptions, clientOptions);
    client.registerFeature(usageNotificationsFeature);
    client.onDidChangeState((change) => {
        ran ||= change.newState === State.Running;
    });
    return client;
}

/**
 * The language client, except that its own toast about a failed start is left out: the
 * extension reports a failed start itself, once, with a way to fix the server's path.
 */
class ClaudeLanguageClient extends LanguageClient {
    private starting = false;

    override async start(): Promise<void> {
        this.starting = true;
        try {
            await super.start();
        } finally {
            this.starting = false;
        }
    }

    override error(message: string, data?: unknown, showNotification: boolean | 'force' = true): void {
        super.error(message, data, this.starting ? false : showNotification);
    }
}

/** Opt in to the server's `claude/usageChanged` notification, which feeds the status bar. */
const usageNotificationsFeature: StaticFeature = {
    fillClientCapabilities(capabilities: ClientCapabilities): void {
        const experimental = (capabilities.experimental ?? {}) as Record<string, unknown>;
        capabilities.experimental = { ...experimental, claudeLsp: { usageNotifications: true } };
    },
    initialize(): void {},
    getState: () => ({ kind: 'static' }),
    clear(): void {},
};
