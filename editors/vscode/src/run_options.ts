// The per-run options of analyze and review as the "… with Options" commands ask for them: one
// quick pick per option, the last choice first, then the model. Pure (no `vscode` import), so the
// unit tests cover it; commands.ts shows the picks and keeps the choices in workspace state.

import type { ActionParams } from './lsp_ext';

/** The editor's document and selection a run is about. */
export type Target = Pick<ActionParams, 'textDocument' | 'range'>;

/** The options a "… with Options" command asks for. */
export type OptionsAction = 'analyze' | 'review';

/** The ActionParams fields an option step sets. */
export type OptionFields = Pick<ActionParams, 'scope' | 'depth' | 'includeTests' | 'minSeverity' | 'fix' | 'model'>;

/** One choice of a step: what the user reads, and the fields it sets. */
export interface OptionChoice {
    label: string;
    fields: OptionFields;
}

/** One question: its choices, the first the default. */
export interface OptionStep {
    key: string;
    title: string;
    choices: OptionChoice[];
}

const scopeStep = (choices: OptionChoice[]): OptionStep => ({ key: 'scope', title: 'What should Claude look at?', choices });

const depthStep: OptionStep = {
    key: 'depth',
    title: 'How thorough?',
    choices: [
        { label: 'Normal', fields: {} },
        { label: 'Quick', fields: { depth: 'quick' } },
        { label: 'Deep', fields: { depth: 'deep' } },
    ],
};

const testsStep: OptionStep = {
    key: 'includeTests',
    title: 'Tests?',
    choices: [
        { label: 'Leave the tests out', fields: {} },
        { label: 'Include the tests', fields: { includeTests: true } },
    ],
};

/** The steps of each action, in the order they are asked. */
export const OPTION_STEPS: Readonly<Record<OptionsAction, readonly OptionStep[]>> = {
    analyze: [
        scopeStep([
            { label: 'This file (or the selection)', fields: {} },
            { label: "This file's folder", fields: { scope: 'folder' } },
            { label: 'The whole workspace', fields: { scope: 'workspace' } },
        ]),
        depthStep,
        testsStep,
    ],
    review: [
        scopeStep([
            { label: 'This file (or the selection)', fields: {} },
            { label: "This file's folder", fields: { scope: 'folder' } },
            { label: 'The whole workspace', fields: { scope: 'workspace' } },
            { label: 'My uncommitted changes', fields: { scope: 'changes' } },
        ]),
        {
            key: 'minSeverity',
            title: 'Which findings?',
            choices: [
                { label: 'Info and up', fields: {} },
                { label: 'Warnings and up', fields: { minSeverity: 'warning' } },
                { label: 'Errors only', fields: { minSeverity: 'error' } },
                { label: 'Everything, hints too', fields: { minSeverity: 'hint' } },
            ],
        },
        {
            key: 'fix',
            title: 'Fixes?',
            choices: [
                { label: 'Findings only', fields: {} },
                { label: 'Ask for a fix with each finding', fields: { fix: true } },
            ],
        },
        depthStep,
        testsStep,
    ],
};

/** What the user chose last, per action: a label per step key, and the model typed. */
export interface RememberedOptions {
    choices: Record<string, string>;
    model?: string;
}

export const LAST_USED = ' (last used)';

/** The choices of `step`, the remembered one first and marked. */
export function orderedChoices(step: OptionStep, remembered: RememberedOptions | undefined): OptionChoice[] {
    const last = remembered?.choices[step.key];
    const index = step.choices.findIndex((choice) => choice.label === last);
    const chosen = step.choices[index];
    if (index <= 0 || chosen === undefined) {
        return step.choices;
    }
    const first = { ...chosen, label: chosen.label + LAST_USED };
    return [first, ...step.choices.filter((_, i) => i !== index)];
}

/** The choice a picked label means (with or without the "last used" mark). */
export function choiceOf(step: OptionStep, label: string): OptionChoice | undefined {
    const plain = label.endsWith(LAST_USED) ? label.slice(0, -LAST_USED.length) : label;
    return step.choices.find((choice) => choice.label === plain);
}

/** The fields of the picked choices and the model (blank: the `model` setting). */
export function optionFields(picked: OptionChoice[], model: string | undefined): OptionFields {
    const fields: OptionFields = Object.assign({}, ...picked.map((choice) => choice.fields)) as OptionFields;
    const trimmed = model?.trim();
    if (trimmed !== undefined && trimmed !== '') {
        fields.model = trimmed;
    }
    return fields;
}

/** What to remember of the picks: each step's label, and the model typed. */
export function remembered(steps: readonly OptionStep[], picked: OptionChoice[], model: string | undefined): RememberedOptions {
    const choices: Record<string, string> = {};
    steps.forEach((step, index) => {
        const choice = picked[index];
        if (choice !== undefined) {
            choices[step.key] = choice.label;
        }
    });
    const trimmed = model?.trim();
    return trimmed ? { choices, model: trimmed } : { choices };
}

/**
 * The parameters of a run of `action` on `target` with `fields`: a review names its scope (the
 * selection or the file unless the fields say otherwise; uncommitted changes have no range).
 */
export function runParams(action: OptionsAction, target: Target, fields: OptionFields): ActionParams {
    if (action === 'analyze') {
        return { ...target, ...fields };
    }
    if (fields.scope === 'changes') {
        return { textDocument: target.textDocument, ...fields };
    }
    return { ...target, scope: target.range === undefined ? 'file' : 'selection', ...fields };
}
