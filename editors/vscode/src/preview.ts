// What a WorkspaceEdit would do, file by file, computed before anything is applied: the text of
// every touched file before and after, so the user can review a diff and accept or reject each
// file. Pure (no `vscode` import): positions are UTF-16 code units, as in VS Code and JS strings.

import type {
    CreateFile,
    DeleteFile,
    Position,
    Range,
    RenameFile,
    TextDocumentEdit,
    TextEdit,
    WorkspaceEdit,
} from 'vscode-languageserver-protocol';

export type DocumentChange = TextDocumentEdit | CreateFile | RenameFile | DeleteFile;

export type FileChangeKind = 'created' | 'modified' | 'deleted' | 'renamed';

/** One file as the edit leaves it. */
export interface FilePreview {
    /** Where the file is after the edit (for a deletion: where it was). */
    uri: string;
    /** Where the file was before the edit; differs from `uri` only for a rename. */
    originalUri: string;
    kind: FileChangeKind;
    /** Text before the edit; `undefined` when the file did not exist. */
    before: string | undefined;
    /** Text after the edit; `undefined` when the file is deleted. */
    after: string | undefined;
    /** Indices into `documentChangesOf(edit)` of the operations that make this file's change. */
    changeIndices: number[];
}

/** The edit cannot be previewed (and VS Code would refuse or misapply it). */
export class PreviewError extends Error {
    constructor(message: string) {
        super(message);
        this.name = 'PreviewError';
    }
}

/**
 * The edit's operations in order. `documentChanges` wins over `changes` when both are present
 * (as in the LSP spec for clients that support it); `changes` become unversioned document edits.
 */
export function documentChangesOf(edit: WorkspaceEdit): DocumentChange[] {
    if (edit.documentChanges !== undefined) {
        return edit.documentChanges;
    }
    return Object.entries(edit.changes ?? {}).map(([uri, edits]) => ({
        textDocument: { uri, version: null },
        edits,
    }));
}

function isCreate(change: DocumentChange): change is CreateFile {
    return 'kind' in change && change.kind === 'create';
}

function isRename(change: DocumentChange): change is RenameFile {
    return 'kind' in change && change.kind === 'rename';
}

function isDelete(change: DocumentChange): change is DeleteFile {
    return 'kind' in change && change.kind === 'delete';
}

function isTextDocumentEdit(change: DocumentChange): change is TextDocumentEdit {
    return 'textDocument' in change && 'edits' in change;
}

/** Every URI whose current text the preview needs: read them all, absent = does not exist. */
export function urisToRead(edit: WorkspaceEdit): string[] {
    const uris = new Set<string>();
    for (const change of documentChangesOf(edit)) {
        if (isRename(change)) {
            uris.add(change.oldUri);
            uris.add(change.newUri);
        } else if (isTextDocumentEdit(change)) {
            uris.add(change.textDocument.uri);
        } else {
            uris.add(change.uri);
        }
    }
    return [...uris];
}

/**
 * Open documents whose version differs from the one a versioned document edit was computed
 * against. Applying such an edit would corrupt the document, so the caller refuses it.
 * `versionOf` answers `undefined` for a document that is not open (nothing to compare).
 */
export function versionConflicts(edit: WorkspaceEdit, versionOf: (uri: string) => number | undefined): string[] {
    const conflicts: string[] = [];
    for (const change of documentChangesOf(edit)) {
        if (!isTextDocumentEdit(change) || change.textDocument.version === null) {
            continue;
        }
        const current = versionOf(change.textDocument.uri);
        if (current !== undefined && current !== change.textDocument.version) {
            conflicts.push(change.textDocument.uri);
        }
    }
    return conflicts;
}

interface Entry {
    originalUri: string;
    uri: string;
    before: string | undefined;
    changeIndices: number[];
    /** Overwritten by a rename onto its URI: ends up gone, whatever its URI holds now. */
    replaced: boolean;
}

/**
 * Simulates the edit on `originals` (URI → current text; a missing URI does not exist) and
 * returns one preview per file that ends up different. Throws `PreviewError` for an edit that
 * cannot apply: a text edit or rename of a missing file, a create over an existing file without
 * `overwrite`/`ignoreIfExists`, overlapping or malformed text edits.
 */
export function previewWorkspaceEdit(edit: WorkspaceEdit, originals: ReadonlyMap<string, string>): FilePreview[] {
    const state = new Map<string, string | undefined>();
    const textOf = (uri: string): string | undefined => (state.has(uri) ? state.get(uri) : originals.get(uri));
    const live = new Map<string, Entry>();
    const finished: Entry[] = [];
    const entryAt = (uri: string): Entry => {
        let entry = live.get(uri);
        if (entry === undefined) {
            entry = { originalUri: uri, uri, before: textOf(uri), changeIndices: [], replaced: false };
            live.set(uri, entry);
        }
        return entry;
    };

    documentChangesOf(edit).forEach((change, index) => {
        if (isTextDocumentEdit(change)) {
            const uri = change.textDocument.uri;
            const text = textOf(uri);
            if (text === undefined) {
                throw new PreviewError(`cannot edit ${uri}: the file does not exist`);
            }
            entryAt(uri).changeIndices.push(index);
            state.set(uri, applyTextEdits(text, change.edits, uri));
        } else if (isCreate(change)) {
            const exists = textOf(change.uri) !== undefined;
            if (exists && !change.options?.overwrite) {
                if (change.options?.ignoreIfExists) {
                    return;
                }
                throw new PreviewError(`cannot create ${change.uri}: the file already exists`);
            }
            entryAt(change.uri).changeIndices.push(index);
            state.set(change.uri, '');
        } else if (isRename(change)) {
            const text = textOf(change.oldUri);
            if (text === undefined) {
                throw new PreviewError(`cannot rename ${change.oldUri}: the file does not exist`);
            }
            if (change.oldUri === change.newUri) {
                return;
            }
            if (textOf(change.newUri) !== undefined) {
                if (!change.options?.overwrite) {
                    if (change.options?.ignoreIfExists) {
                        return;
                    }
                    throw new PreviewError(`cannot rename ${change.oldUri} to ${change.newUri}: the target exists`);
                }
                const overwritten = entryAt(change.newUri);
                overwritten.changeIndices.push(index);
                overwritten.replaced = true;
                live.delete(change.newUri);
                finished.push(overwritten);
            }
            const moved = entryAt(change.oldUri);
            moved.changeIndices.push(index);
            live.delete(change.oldUri);
            moved.uri = change.newUri;
            live.set(change.newUri, moved);
            state.set(change.oldUri, undefined);
            state.set(change.newUri, text);
        } else if (isDelete(change)) {
            if (textOf(change.uri) === undefined) {
                if (change.options?.ignoreIfNotExists) {
                    return;
                }
                throw new PreviewError(`cannot delete ${change.uri}: no such file (folders cannot be previewed)`);
            }
            entryAt(change.uri).changeIndices.push(index);
            state.set(change.uri, undefined);
        } else {
            throw new PreviewError(`unknown document change: ${JSON.stringify(change)}`);
        }
    });

    const previews: FilePreview[] = [];
    for (const entry of [...finished, ...live.values()]) {
        const after = entry.replaced ? undefined : textOf(entry.uri);
        const kind = kindOf(entry, after);
        if (kind !== undefined) {
            previews.push({
                uri: entry.uri,
                originalUri: entry.originalUri,
                kind,
                before: entry.before,
                after,
                changeIndices: entry.changeIndices,
            });
        }
    }
    return previews;
}

function kindOf(entry: Entry, after: string | undefined): FileChangeKind | undefined {
    if (entry.before === undefined) {
        return after === undefined ? undefined : 'created';
    }
    if (after === undefined) {
        return 'deleted';
    }
    if (entry.uri !== entry.originalUri) {
        return 'renamed';
    }
    return after === entry.before ? undefined : 'modified';
}

/**
 * The part of `edit` that makes the accepted files' changes, in the original order, as
 * `documentChanges` (change annotations kept). An operation shared by two files (a rename over
 * an existing file) is kept when either is accepted.
 */
export function selectFiles(edit: WorkspaceEdit, accepted: readonly FilePreview[]): WorkspaceEdit {
    const keep = new Set(accepted.flatMap((file) => file.changeIndices));
    const documentChanges = documentChangesOf(edit).filter((_, index) => keep.has(index));
    const selected: WorkspaceEdit = { documentChanges };
    if (edit.changeAnnotations !== undefined) {
        selected.changeAnnotations = edit.changeAnnotations;
    }
    return selected;
}

/**
 * Applies text edits the LSP way: every range refers to the original text, ranges must not
 * overlap, and inserts at the same position land in array order. Positions past the end of a
 * line or of the text are clamped to it, as VS Code does.
 */
export function applyTextEdits(text: string, edits: readonly TextEdit[], uri = 'the document'): string {
    const lineStarts = lineStartsOf(text);
    const spans = edits.map((edit, order) => {
        checkRange(edit.range, uri);
        const start = offsetAt(text, lineStarts, edit.range.start);
        const end = offsetAt(text, lineStarts, edit.range.end);
        if (end < start) {
            throw new PreviewError(`edit in ${uri} has its end before its start: ${formatRange(edit.range)}`);
        }
        return { start, end, newText: edit.newText, order };
    });
    spans.sort((a, b) => a.start - b.start || a.end - b.end || a.order - b.order);
    let result = '';
    let cursor = 0;
    for (const span of spans) {
        if (span.start < cursor) {
            throw new PreviewError(`overlapping edits in ${uri}`);
        }
        result += text.slice(cursor, span.start) + span.newText;
        cursor = span.end;
    }
    return result + text.slice(cursor);
}

/** Offsets where each line starts; `\n`, `\r\n` and `\r` end lines, as in LSP. */
export function lineStartsOf(text: string): number[] {
    const starts = [0];
    for (let index = 0; index < text.length; index++) {
        const code = text.charCodeAt(index);
        if (code === 0x0d) {
            if (text.charCodeAt(index + 1) === 0x0a) {
                index++;
            }
            starts.push(index + 1);
        } else if (code === 0x0a) {
            starts.push(index + 1);
        }
    }
    return starts;
}

function offsetAt(text: string, lineStarts: readonly number[], position: Position): number {
    const lineStart = lineStarts[position.line];
    if (lineStart === undefined) {
        return text.length;
    }
    const nextStart = lineStarts[position.line + 1];
    let lineEnd = text.length;
    if (nextStart !== undefined) {
        const crlf = text.charCodeAt(nextStart - 2) === 0x0d && text.charCodeAt(nextStart - 1) === 0x0a;
        lineEnd = nextStart - (crlf ? 2 : 1);
    }
    return Math.min(lineStart + position.character, lineEnd);
}

/** Edits come from the server as JSON: check what the types only promise. */
function checkRange(range: unknown, uri: string): void {
    const isPosition = (value: unknown): boolean => {
        if (typeof value !== 'object' || value === null) {
            return false;
        }
        const { line, character } = value as Record<string, unknown>;
        return Number.isInteger(line) && (line as number) >= 0 && Number.isInteger(character) && (character as number) >= 0;
    };
    const valid =
        typeof range === 'object' &&
        range !== null &&
        isPosition((range as Record<string, unknown>).start) &&
        isPosition((range as Record<string, unknown>).end);
    if (!valid) {
        throw new PreviewError(`edit in ${uri} has a malformed range: ${JSON.stringify(range)}`);
    }
}

function formatRange(range: Range): string {
    return `${range.start.line}:${range.start.character}-${range.end.line}:${range.end.character}`;
}
