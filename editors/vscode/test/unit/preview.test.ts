import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import type { TextEdit, WorkspaceEdit } from 'vscode-languageserver-protocol';

import {
    PreviewError,
    applyTextEdits,
    documentChangesOf,
    lineStartsOf,
    previewWorkspaceEdit,
    selectFiles,
    urisToRead,
    versionConflicts,
} from '../../src/preview';

const A = 'file:///ws/a.rs';
const B = 'file:///ws/b.rs';
const C = 'file:///ws/c.rs';

function edit(startLine: number, startChar: number, endLine: number, endChar: number, newText: string): TextEdit {
    return { range: { start: { line: startLine, character: startChar }, end: { line: endLine, character: endChar } }, newText };
}

function summary(previews: ReturnType<typeof previewWorkspaceEdit>): unknown[] {
    return previews.map(({ uri, originalUri, kind, before, after, changeIndices }) => ({
        uri,
        originalUri,
        kind,
        before,
        after,
        changeIndices,
    }));
}

describe('applyTextEdits', () => {
    it('applies edits against the original text, in any array order', () => {
        const text = 'fn a() {}\nfn b() {}\n';
        const edits = [edit(1, 3, 1, 4, 'beta'), edit(0, 3, 0, 4, 'alpha')];
        assert.equal(applyTextEdits(text, edits), 'fn alpha() {}\nfn beta() {}\n');
    });

    it('keeps array order for inserts at the same position', () => {
        assert.equal(applyTextEdits('xy', [edit(0, 1, 0, 1, '1'), edit(0, 1, 0, 1, '2'), edit(0, 1, 0, 1, '3')]), 'x123y');
    });

    it('allows an insert right before a replacement at the same position', () => {
        assert.equal(applyTextEdits('abc', [edit(0, 1, 0, 2, 'B'), edit(0, 1, 0, 1, '>')]), 'a>Bc');
    });

    it('counts characters in UTF-16 code units', () => {
        // 👋 is two UTF-16 code units; é is one.
        const text = 'let s = "é👋!";\n';
        assert.equal(applyTextEdits(text, [edit(0, 12, 0, 13, '?')]), 'let s = "é👋?";\n');
    });

    it('treats \\r\\n, \\n and \\r as line ends', () => {
        const text = 'a\r\nb\nc\rd';
        assert.deepEqual(lineStartsOf(text), [0, 3, 5, 7]);
        assert.equal(applyTextEdits(text, [edit(3, 0, 3, 1, 'D'), edit(2, 0, 2, 1, 'C'), edit(1, 0, 1, 1, 'B')]), 'a\r\nB\nC\rD');
    });

    it('clamps a character past the end of its line to the line end (before the line break)', () => {
        assert.equal(applyTextEdits('ab\r\ncd', [edit(0, 99, 0, 99, '!')]), 'ab!\r\ncd');
    });

    it('clamps a line past the end to the end of the text', () => {
        assert.equal(applyTextEdits('ab\n', [edit(5, 0, 7, 3, 'tail\n')]), 'ab\ntail\n');
    });

    it('deletes across lines', () => {
        assert.equal(applyTextEdits('one\ntwo\nthree\n', [edit(0, 3, 2, 0, '\n')]), 'one\nthree\n');
    });

    it('refuses overlapping edits', () => {
        assert.throws(() => applyTextEdits('abcdef', [edit(0, 0, 0, 3, 'x'), edit(0, 2, 0, 4, 'y')]), PreviewError);
    });

    it('refuses a range whose end comes before its start', () => {
        assert.throws(() => applyTextEdits('abc', [edit(0, 2, 0, 1, 'x')]), /end before its start/);
    });

    it('refuses malformed ranges instead of guessing', () => {
        const bad = [
            { range: { start: { line: -1, character: 0 }, end: { line: 0, character: 0 } }, newText: '' },
            { range: { start: { line: 0, character: 1.5 }, end: { line: 0, character: 2 } }, newText: '' },
            { range: null, newText: '' },
            { range: { start: { line: 0 }, end: { line: 0, character: 0 } }, newText: '' },
        ] as unknown as TextEdit[];
        for (const item of bad) {
            assert.throws(() => applyTextEdits('abc', [item]), /malformed range/);
        }
    });
});

describe('previewWorkspaceEdit', () => {
    it('previews `changes` as modified files', () => {
        const workspaceEdit: WorkspaceEdit = { changes: { [A]: [edit(0, 0, 0, 2, 'pub fn')], [B]: [edit(0, 0, 0, 0, '// b\n')] } };
        const originals = new Map([
            [A, 'fn a() {}\n'],
            [B, 'fn b() {}\n'],
        ]);
        assert.deepEqual(summary(previewWorkspaceEdit(workspaceEdit, originals)), [
            { uri: A, originalUri: A, kind: 'modified', before: 'fn a() {}\n', after: 'pub fn a() {}\n', changeIndices: [0] },
            { uri: B, originalUri: B, kind: 'modified', before: 'fn b() {}\n', after: '// b\nfn b() {}\n', changeIndices: [1] },
        ]);
    });

    it('prefers documentChanges over changes', () => {
        const workspaceEdit: WorkspaceEdit = {
            changes: { [A]: [edit(0, 0, 0, 0, 'ignored')] },
            documentChanges: [{ textDocument: { uri: A, version: 3 }, edits: [edit(0, 0, 0, 0, 'used ')] }],
        };
        const [file] = previewWorkspaceEdit(workspaceEdit, new Map([[A, 'x']]));
        assert.equal(file?.after, 'used x');
    });

    it('previews a CreateFile followed by a TextDocumentEdit into the new file', () => {
        const workspaceEdit: WorkspaceEdit = {
            documentChanges: [
                { textDocument: { uri: A, version: 7 }, edits: [edit(0, 0, 0, 0, 'mod b;\n')] },
                { kind: 'create', uri: B },
                { textDocument: { uri: B, version: null }, edits: [edit(0, 0, 0, 0, 'pub fn b() {}\n')] },
            ],
        };
        assert.deepEqual(summary(previewWorkspaceEdit(workspaceEdit, new Map([[A, 'fn main() {}\n']]))), [
            { uri: A, originalUri: A, kind: 'modified', before: 'fn main() {}\n', after: 'mod b;\nfn main() {}\n', changeIndices: [0] },
            { uri: B, originalUri: B, kind: 'created', before: undefined, after: 'pub fn b() {}\n', changeIndices: [1, 2] },
        ]);
    });

    it('refuses to create over an existing file unless told to overwrite or ignore', () => {
        const originals = new Map([[B, 'old']]);
        assert.throws(() => previewWorkspaceEdit({ documentChanges: [{ kind: 'create', uri: B }] }, originals), /already exists/);
        assert.deepEqual(
            previewWorkspaceEdit({ documentChanges: [{ kind: 'create', uri: B, options: { ignoreIfExists: true } }] }, originals),
            [],
        );
        const [overwritten] = previewWorkspaceEdit(
            { documentChanges: [{ kind: 'create', uri: B, options: { overwrite: true, ignoreIfExists: true } }] },
            originals,
        );
        assert.ok(overwritten);
        assert.equal(overwritten.kind, 'modified');
        assert.equal(overwritten.after, '');
    });

    it('previews a rename with an edit after it as one renamed file', () => {
        const workspaceEdit: WorkspaceEdit = {
            documentChanges: [
                { kind: 'rename', oldUri: A, newUri: C },
                { textDocument: { uri: C, version: null }, edits: [edit(0, 3, 0, 4, 'c')] },
            ],
        };
        assert.deepEqual(summary(previewWorkspaceEdit(workspaceEdit, new Map([[A, 'fn a() {}']]))), [
            { uri: C, originalUri: A, kind: 'renamed', before: 'fn a() {}', after: 'fn c() {}', changeIndices: [0, 1] },
        ]);
    });

    it('previews a rename over an existing file as that file replaced', () => {
        const workspaceEdit: WorkspaceEdit = {
            documentChanges: [{ kind: 'rename', oldUri: A, newUri: B, options: { overwrite: true } }],
        };
        const originals = new Map([
            [A, 'a'],
            [B, 'b'],
        ]);
        assert.deepEqual(summary(previewWorkspaceEdit(workspaceEdit, originals)), [
            { uri: B, originalUri: B, kind: 'deleted', before: 'b', after: undefined, changeIndices: [0] },
            { uri: B, originalUri: A, kind: 'renamed', before: 'a', after: 'a', changeIndices: [0] },
        ]);
        assert.throws(
            () => previewWorkspaceEdit({ documentChanges: [{ kind: 'rename', oldUri: A, newUri: B }] }, originals),
            /target exists/,
        );
    });

    it('previews deletes, and ignores missing files only when asked', () => {
        const originals = new Map([[A, 'gone soon']]);
        assert.deepEqual(summary(previewWorkspaceEdit({ documentChanges: [{ kind: 'delete', uri: A }] }, originals)), [
            { uri: A, originalUri: A, kind: 'deleted', before: 'gone soon', after: undefined, changeIndices: [0] },
        ]);
        assert.throws(() => previewWorkspaceEdit({ documentChanges: [{ kind: 'delete', uri: B }] }, originals), /no such file/);
        assert.deepEqual(
            previewWorkspaceEdit({ documentChanges: [{ kind: 'delete', uri: B, options: { ignoreIfNotExists: true } }] }, originals),
            [],
        );
    });

    it('leaves out a file created and deleted again, and edits that change nothing', () => {
        const workspaceEdit: WorkspaceEdit = {
            documentChanges: [
                { kind: 'create', uri: B },
                { kind: 'delete', uri: B },
                { textDocument: { uri: A, version: 1 }, edits: [edit(0, 0, 0, 1, 'x')] },
            ],
        };
        assert.deepEqual(previewWorkspaceEdit(workspaceEdit, new Map([[A, 'x']])), []);
    });

    it('refuses an edit of a file that does not exist', () => {
        assert.throws(
            () => previewWorkspaceEdit({ changes: { [A]: [edit(0, 0, 0, 0, 'x')] } }, new Map()),
            (error: unknown) => error instanceof PreviewError && error.message.includes(A),
        );
    });

    it('refuses an unknown kind of document change', () => {
        const workspaceEdit = { documentChanges: [{ kind: 'chmod', uri: A }] } as unknown as WorkspaceEdit;
        assert.throws(() => previewWorkspaceEdit(workspaceEdit, new Map([[A, '']])), /unknown document change/);
    });
});

describe('selectFiles', () => {
    const workspaceEdit: WorkspaceEdit = {
        documentChanges: [
            { textDocument: { uri: A, version: 2 }, edits: [edit(0, 0, 0, 0, 'a')] },
            { kind: 'create', uri: B },
            { textDocument: { uri: B, version: null }, edits: [edit(0, 0, 0, 0, 'b')] },
            { textDocument: { uri: A, version: 2 }, edits: [edit(0, 1, 0, 1, 'z')] },
        ],
        changeAnnotations: { note: { label: 'Claude' } },
    };
    const previews = previewWorkspaceEdit(workspaceEdit, new Map([[A, 'x']]));

    it('keeps only the accepted files\u2019 operations, in order, with the annotations', () => {
        const onlyB = selectFiles(
            workspaceEdit,
            previews.filter((file) => file.uri === B),
        );
        assert.deepEqual(onlyB, {
            documentChanges: [
                { kind: 'create', uri: B },
                { textDocument: { uri: B, version: null }, edits: [edit(0, 0, 0, 0, 'b')] },
            ],
            changeAnnotations: { note: { label: 'Claude' } },
        });
        const onlyA = selectFiles(
            workspaceEdit,
            previews.filter((file) => file.uri === A),
        );
        assert.deepEqual(documentChangesOf(onlyA), [
            { textDocument: { uri: A, version: 2 }, edits: [edit(0, 0, 0, 0, 'a')] },
            { textDocument: { uri: A, version: 2 }, edits: [edit(0, 1, 0, 1, 'z')] },
        ]);
    });

    it('selects nothing when nothing is accepted', () => {
        assert.deepEqual(selectFiles({ changes: { [A]: [] } }, []), { documentChanges: [] });
    });
});

describe('urisToRead and versionConflicts', () => {
    const workspaceEdit: WorkspaceEdit = {
        documentChanges: [
            { textDocument: { uri: A, version: 4 }, edits: [] },
            { kind: 'rename', oldUri: B, newUri: C },
            { textDocument: { uri: C, version: null }, edits: [] },
        ],
    };

    it('lists every URI the edit touches once', () => {
        assert.deepEqual(urisToRead(workspaceEdit).sort(), [A, B, C]);
    });

    it('reports open documents whose version moved on, and nothing for unversioned or closed ones', () => {
        const versions = new Map([
            [A, 5],
            [C, 9],
        ]);
        assert.deepEqual(
            versionConflicts(workspaceEdit, (uri) => versions.get(uri)),
            [A],
        );
        assert.deepEqual(
            versionConflicts(workspaceEdit, () => undefined),
            [],
        );
        assert.deepEqual(
            versionConflicts(workspaceEdit, (uri) => (uri === A ? 4 : 1)),
            [],
        );
    });
});
