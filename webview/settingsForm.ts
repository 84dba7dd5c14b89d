/** Run settings (seed, batch, sequence length, loss, backend, precision, train/eval mode) as a compact toolbar form. */
import type { RunSettings } from '../extension/protocol';

interface Field {
  key: keyof RunSettings;
  label: string;
  options?: [string, string][];
}

const FIELDS: Field[] = [
  { key: 'seed', label: 'Seed' },
  { key: 'batch', label: 'Batch' },
  { key: 'sequenceLength', label: 'Seq len' },
  { key: 'loss', label: 'Loss', options: [['auto', 'auto'], ['model', 'from model'], ['cross-entropy', 'cross-entropy (random labels)'], ['next-token', 'next-token cross-entropy'], ['mse', 'mean of squares']] },
  { key: 'backend', label: 'Backend', options: [['auto', 'auto'], ['webgpu', 'WebGPU'], ['wasm', 'WebAssembly'], ['typescript', 'TypeScript']] },
  { key: 'dtype', label: 'Precision', options: [['float32', 'float32'], ['float64', 'float64']] },
  { key: 'attentionSample', label: 'Attn sample' },
  { key: 'mode', label: 'Mode', options: [['train', 'train (batch statistics, dropout)'], ['eval', 'eval (running statistics, no dropout)']] },
];

/** onChange sees every accepted edit (the Training section trains with the settings as shown, before any Re-run). */
export function renderSettings(host: HTMLElement, settings: RunSettings, onRun: (s: RunSettings) => void, onChange?: (s: RunSettings) => void): void {
  const form = document.createElement('form');
  form.className = 'settings';
  const current: RunSettings = { ...settings };
  for (const f of FIELDS) {
    const label = document.createElement('label');
    label.textContent = f.label;
    let input: HTMLElement;
    if (f.options) {
      const select = document.createElement('vscode-single-select') as HTMLElement & { value: string };
      for (const [value, text] of f.options) {
        const o = document.createElement('vscode-option') as HTMLElement & { value: string; selected: boolean };
        o.textContent = text;
        o.setAttribute('value', value);
        if (String(settings[f.key]) === value) o.setAttribute('selected', '');
        select.appendChild(o);
      }
      select.addEventListener('change', () => {
        (current as unknown as Record<string, unknown>)[f.key] = select.value;
        onChange?.({ ...current });
      });
      input = select;
    } else {
      const field = document.createElement('vscode-textfield') as HTMLElement & { value: string };
      field.setAttribute('type', 'number');
      field.setAttribute('value', String(settings[f.key]));
      field.setAttribute('size', '4');
      field.addEventListener('change', () => {
        const v = Number(field.value);
        if (Number.isInteger(v) && v >= (f.key === 'seed' || f.key === 'attentionSample' ? 0 : 1)) {
          (current as unknown as Record<string, unknown>)[f.key] = v;
          onChange?.({ ...current });
        }
      });
      input = field;
    }
    input.setAttribute('aria-label', f.label);
    label.appendChild(input);
    form.appendChild(label);
  }
  const run = document.createElement('vscode-button');
  run.textContent = 'Re-run';
  run.setAttribute('icon', 'debug-rerun');
  run.addEventListener('click', () => onRun({ ...current }));
  form.appendChild(run);
  form.addEventListener('submit', (e) => e.preventDefault());
  host.replaceChildren(form);
}
