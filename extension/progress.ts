import * as vscode from 'vscode';

/** What a task reports: a message, and (for a progress bar) the percent done since its last report. */
export interface ProgressStep {
  message?: string;
  increment?: number;
}

/**
 * Runs `task` with a cancellable notification that appears only once the task has run `delayMs`. A warm Inspect
 * takes ~100-250 ms: a toast shown for it, and held on screen for VS Code's minimum of 800 ms, is DOM and layout work
 * for the workbench's renderer, the thread that paints the overlays (not measured on its own: it is one of the
 * changes behind session 8's warm click numbers in bench/README.md). The caller shows that something runs meanwhile
 * (the status bar item). Steps reported before the notification appears are kept: it opens at the last message and
 * at the sum of the increments.
 */
export async function withDelayedProgress<T>(title: string, delayMs: number, task: (report: (step: ProgressStep) => void, token: vscode.CancellationToken) => Promise<T>): Promise<T> {
  const cts = new vscode.CancellationTokenSource();
  let message: string | undefined;
  let done = 0;
  let shown: vscode.Progress<ProgressStep> | undefined;
  const report = (step: ProgressStep) => {
    if (step.message !== undefined) message = step.message;
    done += step.increment ?? 0;
    shown?.report(step);
  };
  const running = task(report, cts.token);
  const timer = setTimeout(() => {
    void vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, (progress, token) => {
      token.onCancellationRequested(() => cts.cancel());
      progress.report({ message, increment: done });
      shown = progress;
      return running.catch(() => undefined);
    });
  }, delayMs);
  try {
    return await running;
  } finally {
    clearTimeout(timer);
    cts.dispose();
  }
}
