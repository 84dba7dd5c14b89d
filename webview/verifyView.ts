/** "Verify against PyTorch" in the panel: the button, the result badge and the per-module differences. */
import type { VerificationView } from '../extension/protocol';

const SHOWN_MODULES = 12;

export class VerifyView {
  private readonly button: HTMLElement;
  private readonly badge: HTMLElement;
  private readonly details: HTMLElement;

  constructor(header: HTMLElement, details: HTMLElement, onVerify: () => void) {
    this.button = document.createElement('vscode-button');
    this.button.dataset.testid = 'verify';
    this.button.setAttribute('secondary', '');
    this.button.title = 'Run the model in PyTorch on exactly the inputs, targets, loss and weights of this run and compare the gradients';
    this.button.textContent = 'Verify against PyTorch';
    this.button.addEventListener('click', onVerify);
    this.badge = document.createElement('span');
    this.badge.className = 'verification';
    this.badge.dataset.testid = 'verification';
    this.badge.setAttribute('role', 'status');
    header.append(this.button, this.badge);
    this.details = details;
  }

  render(view: VerificationView | null): void {
    this.badge.className = 'verification';
    this.details.replaceChildren();
    this.details.hidden = true;
    this.button.toggleAttribute('disabled', view?.status === 'running');
    if (!view) {
      this.badge.textContent = '';
      return;
    }
    if (view.status === 'running') {
      this.badge.textContent = 'verifying against PyTorch…';
      return;
    }
    if (view.status === 'failed') {
      this.badge.textContent = view.message === 'cancelled' ? 'verification cancelled' : 'verification failed';
      this.badge.title = view.message;
      this.badge.classList.add('failed');
      return;
    }
    const v = view.result;
    this.badge.textContent = view.badge;
    this.badge.classList.add(v.status);
    this.badge.title = `${v.compared} of ${v.total} parameter gradients compared with PyTorch (${v.dtype}, tolerance ${v.tolerance.toExponential(0)}); loss ${v.loss.engine.toPrecision(7)} vs ${v.loss.torch.toPrecision(7)}${v.notes.length ? `\n${v.notes.join('\n')}` : ''}`;
    const table = document.createElement('table');
    table.dataset.testid = 'verification-table';
    table.innerHTML = '<thead><tr><th>module</th><th>engine vs PyTorch</th><th>worst parameter</th></tr></thead>';
    const body = document.createElement('tbody');
    for (const m of v.modules.slice(0, SHOWN_MODULES)) {
      const row = document.createElement('tr');
      if (!(m.relative <= v.tolerance)) row.className = 'differs';
      for (const text of [m.path || '(model)', Number.isNaN(m.relative) ? 'NaN' : m.relative.toExponential(1), m.worst]) {
        const cell = document.createElement('td');
        cell.textContent = text;
        row.append(cell);
      }
      body.append(row);
    }
    table.append(body);
    const summary = document.createElement('summary');
    summary.textContent = `Relative gradient difference per module (largest first${v.modules.length > SHOWN_MODULES ? `, ${SHOWN_MODULES} of ${v.modules.length}` : ''})`;
    const box = document.createElement('details');
    box.append(summary, table);
    this.details.append(box);
    this.details.hidden = false;
  }
}
