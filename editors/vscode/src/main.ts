// Extension entry point: starts claude-lsp, wires its notifications to the output channel and
// the status bar, and registers the commands.

import * as vscode from 'vscode';
import { State, type LanguageClient } from 'vscode-languageclient/node';

import { createClient, missingExecutable, serverExecutable } from './client';
import { Commands } from './commands';
import { OutputFormatter, WindowUsage, usageReportLines } from './format';
import { output, usageChanged, type UsageReport } from './lsp_ext';

let client: LanguageClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
    const stream = vscode.window.createOutputChannel('Claude');
    const serverLog = vscode.window.createOutputChannel('Claude Language Server');
    const windowUsage = new WindowUsage();
    const status = new UsageStatus(windowUsage);
    const commands = new Commands(() => client, stream, windowUsage, context.workspaceState);
    context.subscriptions.push(stream, serverLog, status, commands, ...commands.register());

    const start = async (): Promise<void> => {
        const executable = serverExecutable(context.extensionPath);
        // Checked first: the language client reports a failed spawn with a toast of its own.
        const missing = missingExecutable(executable);
        if (missing !== undefined) {
            status.showState(State.Stopped);
            await reportFailedStart(executable, missing);
            return;
        }
        const started = createClient(executable, serverLog, (command, args) => commands.intercept(command, args));
        client = started;
        const formatter = new OutputFormatter();
        started.onNotification(output, (params) => stream.append(formatter.format(params)));
        started.onNotification(usageChanged, (report) => {
            windowUsage.add(report);
            status.showUsage(report);
        });
        started.onDidChangeState((change) => status.showState(change.newState));
        try {
            await started.start();
        } catch (error) {
            await reportFailedStart(executable, error instanceof Error ? error.message : String(error));
        }
    };
    const restart = async (): Promise<void> => {
        const previous = client;
        client = undefined;
        // A client whose start failed cannot be stopped (the language client throws).
        if (previous?.needsStop() === true) {
            await previous.dispose();
        }
        await start();
    };

    context.subscriptions.push(
        vscode.commands.registerCommand('claude-lsp.restartServer', restart),
        vscode.workspace.onDidChangeConfiguration(async (event) => {
            // Every other setting reaches the running server; where the server is needs a restart.
            if (event.affectsConfiguration('claude.serverPath')) {
                const choice = await vscode.window.showInformationMessage(
                    'Claude: restart the language server to use the new claude.serverPath?',
                    'Restart',
                );
                if (choice === 'Restart') {
                    await restart();
                }
            }
        }),
    );
    await start();
}

/** One error toast for a server that did not start, with a way to fix the path. */
async function reportFailedStart(executable: string, reason: string): Promise<void> {
    const choice = await vscode.window.showErrorMessage(
        `Claude: could not start the language server "${executable}" (${reason}). ` +
            'Install claude-lsp on your PATH or set "claude.serverPath".',
        'Open Settings',
    );
    if (choice === 'Open Settings') {
        await vscode.commands.executeCommand('workbench.action.openSettings', 'claude.serverPath');
    }
}

export async function deactivate(): Promise<void> {
    const running = client;
    client = undefined;
    // A client whose start failed cannot be stopped (the language client throws).
    if (running?.needsStop() === true) {
        await running.stop();
    }
}

/** The status-bar item: what this window's runs cost (from `claude/usageChanged`), or the server's state. */
class UsageStatus implements vscode.Disposable {
    private readonly item = vscode.window.createStatusBarItem('claude-lsp.usage', vscode.StatusBarAlignment.Right, 100);

    constructor(private readonly windowUsage: WindowUsage) {
        this.item.name = 'Claude usage';
        this.item.command = 'claude-lsp.showUsage';
        this.showState(State.Starting);
        this.item.show();
    }

    dispose(): void {
        this.item.dispose();
    }

    showState(state: State): void {
        if (state === State.Running) {
            this.item.text = '$(sparkle) Claude';
            this.item.tooltip = 'claude-lsp is running. Click for usage.';
        } else if (state === State.Starting) {
            this.item.text = '$(loading~spin) Claude';
            this.item.tooltip = 'claude-lsp is starting.';
        } else {
            this.item.text = '$(error) Claude';
            this.item.tooltip = 'claude-lsp is not running. Run "Claude: Restart Server".';
        }
    }

    showUsage(report: UsageReport): void {
        this.item.text = `$(sparkle) ${this.windowUsage.statusText()}`;
        this.item.tooltip = usageReportLines(report, this.windowUsage).join('\n');
    }
}
