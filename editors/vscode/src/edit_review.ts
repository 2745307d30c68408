// Reviewing a WorkspaceEdit before it is applied: a diff per file (virtual documents, so nothing
// touches the disk), a multi-select list of the files to accept, then `workspace.applyEdit` of
// the accepted part only.

import * as vscode from 'vscode';
import type { WorkspaceEdit } from 'vscode-languageserver-protocol';
import type { LanguageClient } from 'vscode-languageclient/node';

import {
    type FilePreview,
    previewWorkspaceEdit,
    selectFiles,
    urisToRead,
    versionConflicts,
} from './preview';

const SCHEME = 'claude-preview';

export interface ReviewOutcome {
    applied: FilePreview[];
    rejected: FilePreview[];
}

interface FileItem extends vscode.QuickPickItem {
    file: FilePreview;
}

/** Serves the before/after texts of the files under review to the diff editors. */
export class EditReviewer implements vscode.TextDocumentContentProvider, vscode.Disposable {
    private readonly texts = new Map<string, string>();
    private readonly registration: vscode.Disposable;
    private nextId = 0;

    constructor(private readonly client: () => LanguageClient) {
        this.registration = vscode.workspace.registerTextDocumentContentProvider(SCHEME, this);
    }

    dispose(): void {
        this.registration.dispose();
    }

    provideTextDocumentContent(uri: vscode.Uri): string {
        return this.texts.get(uri.toString()) ?? '';
    }

    /**
     * Shows the edit and applies the files the user accepts. Throws (with a message for the
     * user) when the edit cannot apply: a target changed since the run started, a bad edit.
     */
    async review(edit: WorkspaceEdit, title: string): Promise<ReviewOutcome> {
        const openVersions = new Map(vscode.workspace.textDocuments.map((doc) => [doc.uri.toString(), doc.version]));
        const conflicts = versionConflicts(edit, (uri) => openVersions.get(vscode.Uri.parse(uri).toString()));
        if (conflicts.length > 0) {
            throw new Error(
                `${conflicts.map(displayPath).join(', ')} changed while Claude was working; run the action again.`,
            );
        }
        const originals = await readTexts(urisToRead(edit));
        const files = previewWorkspaceEdit(edit, originals);
        if (files.length === 0) {
            return { applied: [], rejected: [] };
        }
        const id = this.nextId++;
        const shown: string[] = [];
        try {
            const accepted = await this.pickFiles(files, title, id, shown);
            if (accepted.length === 0) {
                return { applied: [], rejected: files };
            }
            const selected = selectFiles(edit, accepted);
            const converted = await this.client().protocol2CodeConverter.asWorkspaceEdit(selected);
            if (!(await vscode.workspace.applyEdit(converted))) {
                throw new Error('VS Code refused the edit (a file may have changed meanwhile); nothing was applied.');
            }
            // A created file would otherwise exist on disk empty, its content only in an unsaved buffer.
            for (const file of accepted.filter((preview) => preview.kind === 'created')) {
                const created = await vscode.workspace.openTextDocument(vscode.Uri.parse(file.uri));
                await created.save();
            }
            return { applied: accepted, rejected: files.filter((file) => !accepted.includes(file)) };
        } finally {
            await closeDiffs(id);
            for (const uri of shown) {
                this.texts.delete(uri);
            }
        }
    }

    private async pickFiles(files: FilePreview[], title: string, id: number, shown: string[]): Promise<FilePreview[]> {
        const picker = vscode.window.createQuickPick<FileItem>();
        picker.title = `${title}: ${files.length} changed file${files.length === 1 ? '' : 's'}`;
        picker.placeholder = 'Uncheck the files to reject. Enter applies the checked files; Escape rejects all.';
        picker.canSelectMany = true;
        picker.ignoreFocusOut = true;
        picker.matchOnDescription = true;
        picker.items = files.map((file) => ({
            label: vscode.workspace.asRelativePath(vscode.Uri.parse(file.uri)),
            description: describe(file),
            file,
        }));
        picker.selectedItems = picker.items;
        const showDiff = (item: FileItem | undefined): void => {
            if (item !== undefined) {
                void this.showDiff(item.file, title, id, shown);
            }
        };
        return new Promise<FilePreview[]>((resolve) => {
            let accepted: FilePreview[] = [];
            picker.onDidChangeActive((items) => showDiff(items[0]));
            picker.onDidAccept(() => {
                accepted = picker.selectedItems.map((item) => item.file);
                picker.hide();
            });
            picker.onDidHide(() => {
                picker.dispose();
                resolve(accepted);
            });
            picker.show();
            showDiff(picker.items[0]);
        });
    }

    private async showDiff(file: FilePreview, title: string, id: number, shown: string[]): Promise<void> {
        const path = vscode.Uri.parse(file.uri).path;
        const before = vscode.Uri.from({ scheme: SCHEME, path, query: `${id}-before` });
        const after = vscode.Uri.from({ scheme: SCHEME, path, query: `${id}-after` });
        this.texts.set(before.toString(), file.before ?? '');
        this.texts.set(after.toString(), file.after ?? '');
        shown.push(before.toString(), after.toString());
        const label = `${vscode.workspace.asRelativePath(vscode.Uri.parse(file.uri))} (${title}: ${file.kind})`;
        await vscode.commands.executeCommand('vscode.diff', before, after, label, {
            preview: true,
            preserveFocus: true,
        });
    }
}

function describe(file: FilePreview): string {
    if (file.kind === 'renamed') {
        return `renamed from ${vscode.workspace.asRelativePath(vscode.Uri.parse(file.originalUri))}`;
    }
    return file.kind;
}

function displayPath(uri: string): string {
    return vscode.workspace.asRelativePath(vscode.Uri.parse(uri));
}

/** Current text of each URI: the open document's (unsaved edits included), else the file's. */
async function readTexts(uris: string[]): Promise<Map<string, string>> {
    const open = new Map(vscode.workspace.textDocuments.map((doc) => [doc.uri.toString(), doc]));
    const texts = new Map<string, string>();
    const decoder = new TextDecoder('utf-8', { fatal: true });
    for (const uri of uris) {
        const parsed = vscode.Uri.parse(uri);
        const document = open.get(parsed.toString());
        if (document !== undefined) {
            texts.set(uri, document.getText());
            continue;
        }
        let bytes: Uint8Array;
        try {
            bytes = await vscode.workspace.fs.readFile(parsed);
        } catch (error) {
            if (error instanceof vscode.FileSystemError && error.code === 'FileNotFound') {
                continue;
            }
            throw error;
        }
        try {
            texts.set(uri, decoder.decode(bytes));
        } catch {
            throw new Error(`${displayPath(uri)} is not UTF-8 text; the edit cannot be previewed.`);
        }
    }
    return texts;
}

/** Closes the diff editors one review opened. */
async function closeDiffs(id: number): Promise<void> {
    const tabs = vscode.window.tabGroups.all.flatMap((group) =>
        group.tabs.filter(
            (tab) =>
                tab.input instanceof vscode.TabInputTextDiff &&
                tab.input.modified.scheme === SCHEME &&
                tab.input.modified.query.startsWith(`${id}-`),
        ),
    );
    if (tabs.length > 0) {
        await vscode.window.tabGroups.close(tabs);
    }
}
