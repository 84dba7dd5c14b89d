/** The Gradient Lens panel: UI in the webview, engine in a worker. */
import '@vscode-elements/elements/dist/vscode-badge';
import { HostToWebview, WebviewToHost, WorkerToPage, PageToWorker, BackendInfo } from '../extension/protocol';

declare function acquireVsCodeApi(): { postMessage(m: WebviewToHost): void; getState(): unknown; setState(s: unknown): void };
const vscode = acquireVsCodeApi();

const app = document.getElementById('app')!;

function render(info: BackendInfo | null): void {
  app.innerHTML = '';
  const header = document.createElement('header');
  const title = document.createElement('h1');
  title.textContent = 'Gradient Lens';
  const badge = document.createElement('vscode-badge');
  badge.dataset.testid = 'backend';
  badge.textContent = info ? info.name : 'starting engine…';
  badge.title = info ? `${info.reason}${info.webgpuAdapter ? `; WebGPU adapter: ${info.webgpuAdapter}` : '; no WebGPU adapter'}` : '';
  header.append(title, badge);
  const detail = document.createElement('p');
  detail.className = 'detail';
  detail.dataset.testid = 'backend-detail';
  if (info) {
    detail.textContent = `Engine backend: ${info.name} — ${info.reason}. WebGPU adapter: ${info.webgpuAdapter ?? 'none'}. WebAssembly SIMD: ${info.wasmSimd ? 'yes' : 'no'}.`;
  }
  const empty = document.createElement('p');
  empty.textContent = 'No model inspected yet.';
  app.append(header, detail, empty);
}

/** Workers cannot load webview resource URLs directly (different origin): start one from a blob of the script. */
async function startWorker(): Promise<Worker> {
  const url = app.dataset.worker!;
  const code = await (await fetch(url)).text();
  return new Worker(URL.createObjectURL(new Blob([code], { type: 'text/javascript' })));
}

async function main(): Promise<void> {
  render(null);
  window.addEventListener('message', (event: MessageEvent<HostToWebview>) => {
    if (event.data.type === 'hello') document.body.dataset.version = event.data.version;
  });
  vscode.postMessage({ type: 'ready' });
  const worker = await startWorker();
  worker.onmessage = (event: MessageEvent<WorkerToPage>) => {
    const m = event.data;
    if (m.type === 'backend') {
      render(m.info);
      vscode.postMessage({ type: 'backend', info: m.info });
    } else {
      vscode.postMessage({ type: 'error', message: m.message });
    }
  };
  worker.postMessage({ type: 'probe' } satisfies PageToWorker);
}

main().catch((err) => vscode.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err) }));
