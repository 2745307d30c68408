// Claude's answers, shown as read-only markdown documents (scheme `claude-answer`): rendered in
// the markdown preview, never an untitled buffer that asks to be saved when the window closes.

import * as vscode from 'vscode';

const SCHEME = 'claude-answer';

/** Answers kept for their documents; older ones read as empty (their preview was long closed). */
const KEPT_ANSWERS = 20;

export class AnswerDocuments implements vscode.TextDocumentContentProvider, vscode.Disposable {
    private readonly texts = new Map<string, string>();
    private readonly registration: vscode.Disposable;
    private count = 0;

    constructor() {
        this.registration = vscode.workspace.registerTextDocumentContentProvider(SCHEME, this);
    }

    dispose(): void {
        this.registration.dispose();
    }

    provideTextDocumentContent(uri: vscode.Uri): string {
        return this.texts.get(uri.toString()) ?? '';
    }

    /** Shows `markdown` rendered, in a document named after `title` ("Claude: analyze"). */
    async show(title: string, markdown: string): Promise<void> {
        this.count += 1;
        const name = `${title.replace(/:/g, '')} ${this.count}.md`;
        const uri = vscode.Uri.from({ scheme: SCHEME, path: `/${name}` });
        this.texts.set(uri.toString(), markdown);
        // A Map iterates in insertion order: the first key is the oldest answer.
        for (const oldest of this.texts.keys()) {
            if (this.texts.size <= KEPT_ANSWERS) {
                break;
            }
            this.texts.delete(oldest);
        }
        try {
            await vscode.commands.executeCommand('markdown.showPreview', uri);
        } catch {
            // Without the built-in markdown extension: the markdown itself, read-only.
            await vscode.window.showTextDocument(uri, { preview: true });
        }
    }
}
