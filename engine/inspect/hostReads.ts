/**
 * Host-side work on tensor values that may live on a device (WebGPU). Hooks and callbacks run
 * synchronously during forward/backward, but device values can only be read asynchronously; a job
 * runs at once when its tensors are on the host and nothing is queued, else after flush() has read
 * them. Jobs keep their order either way (hook logs and "first non-finite" depend on it).
 */
import { Tensor, readTensors } from '../tensor';

export class HostReads {
  private readonly queue: { tensors: readonly Tensor[]; job: () => void }[] = [];

  /** Runs `job` once every tensor of `tensors` has host values. */
  on(tensors: readonly Tensor[], job: () => void): void {
    if (this.queue.length === 0 && tensors.every((t) => t.hasHostData)) job();
    else this.queue.push({ tensors, job });
  }

  /** Reads every queued tensor back (one batch), then runs the queued jobs in order. */
  async flush(): Promise<void> {
    await readTensors(this.queue.flatMap((q) => q.tensors));
    for (const q of this.queue.splice(0)) q.job();
  }
}
