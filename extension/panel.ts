import * as vscode from 'vscode';
import { HostToWebview, WebviewToHost, BackendInfo } from './protocol';

/** The single Gradient Lens webview panel (created on demand, revealed if it exists). */
export class GradientLensPanel {
  static current: GradientLensPanel | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  backend: BackendInfo | undefined;

  static show(context: vscode.ExtensionContext, output: vscode.OutputChannel): GradientLensPanel {
    if (GradientLensPanel.current) {
      GradientLensPanel.current.panel.reveal();
      return GradientLensPanel.current;
    }
    const panel = vscode.window.createWebviewPanel('gradientLens.panel', 'Gradient Lens', vscode.ViewColumn.Beside, {
      enableScripts: true,
      retainContextWhenHidden: true,
      localResourceRoots: [vscode.Uri.joinPath(context.extensionUri, 'dist'), vscode.Uri.joinPath(context.extensionUri, 'media')],
    });
    GradientLensPanel.current = new GradientLensPanel(panel, context, output);
    return GradientLensPanel.current;
  }

  private constructor(private readonly panel: vscode.WebviewPanel, context: vscode.ExtensionContext, private readonly output: vscode.OutputChannel) {
    panel.webview.html = this.html(panel.webview, context.extensionUri);
    panel.onDidDispose(() => this.dispose(), null, this.disposables);
    panel.webview.onDidReceiveMessage((m: WebviewToHost) => this.onMessage(m), null, this.disposables);
  }

  post(message: HostToWebview): Thenable<boolean> {
    return this.panel.webview.postMessage(message);
  }

  private onMessage(message: WebviewToHost): void {
    switch (message.type) {
      case 'ready':
        void this.post({ type: 'hello', version: String(vscode.extensions.getExtension('gradient-lens.gradient-lens')?.packageJSON.version ?? '') });
        break;
      case 'backend':
        this.backend = message.info;
        this.output.appendLine(`engine backend: ${message.info.name} (${message.info.reason})`);
        break;
      case 'error':
        this.output.appendLine(`webview error: ${message.message}`);
        void vscode.window.showErrorMessage(`Gradient Lens: ${message.message}`);
        break;
    }
  }

  private html(webview: vscode.Webview, extensionUri: vscode.Uri): string {
    const nonce = makeNonce();
    const asset = (name: string) => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', name)).toString();
    // Strict CSP: only our nonce'd script; the engine worker is started from a blob of our own script;
    // 'wasm-unsafe-eval' lets the WebAssembly backend compile; fetch reaches only our own resources.
    const csp = [
      "default-src 'none'",
      `img-src ${webview.cspSource} data:`,
      `style-src ${webview.cspSource} 'unsafe-inline'`,
      `font-src ${webview.cspSource}`,
      `script-src 'nonce-${nonce}' 'wasm-unsafe-eval'`,
      `worker-src blob:`,
      `connect-src ${webview.cspSource}`,
    ].join('; ');
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Gradient Lens</title>
<link rel="stylesheet" href="${asset('webview.css')}">
</head>
<body>
<div id="app" data-worker="${asset('engine-worker.js')}"></div>
<script nonce="${nonce}" src="${asset('webview.js')}"></script>
</body>
</html>`;
  }

  dispose(): void {
    GradientLensPanel.current = undefined;
    this.panel.dispose();
    while (this.disposables.length) this.disposables.pop()?.dispose();
  }
}

function makeNonce(): string {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let s = '';
  for (let i = 0; i < 32; i++) s += chars.charAt(Math.floor(Math.random() * chars.length));
  return s;
}
