/**
 * What a run fed, used and computed, so that another framework can repeat it exactly ("Verify against
 * PyTorch"): the inputs, the loss and its targets, the weights as the run saw them, the keep masks of its
 * dropouts in execution order, and every trainable parameter's gradient. Host copies with their own buffers
 * (they are posted from the worker to the extension host).
 */
import type { DType, FloatDType, TypedArray } from '../dtype';
import { dropoutMaskOf } from '../ops';
import { isFloat } from '../dtype';
import { readTensors, Tensor } from '../tensor';
import type { LossInfo, OnnxModel, OnnxRunResult, OnnxValue } from '../onnx';

export interface CapturedTensor {
  name: string;
  dtype: DType;
  shape: number[];
  data: TypedArray;
}

export interface RunCapture {
  dtype: FloatDType;
  /** How Dropout and BatchNorm ran: PyTorch repeats the run in model.train() or model.eval(). */
  mode: 'train' | 'eval';
  /** Graph inputs as fed, in graph order. */
  inputs: CapturedTensor[];
  /** Graph output names, in graph order (the order of the flattened outputs of the PyTorch forward). */
  outputs: string[];
  loss: Pick<LossInfo, 'kind' | 'output' | 'classAxis' | 'ignoreIndex'> & { value: number; targets: CapturedTensor | null };
  /** Every float initializer (trainable parameters and buffers such as running statistics or frozen weights). */
  values: CapturedTensor[];
  /** Gradients of the trainable parameters, named by parameter. */
  gradients: CapturedTensor[];
  /** Keep masks (bool) of the Dropout nodes that dropped anything, in execution order, named by node. */
  dropout: CapturedTensor[];
  /**
   * Every Dropout node the run executed, in order, whether it dropped or passed its input through (a Dropout
   * without a training_mode input is in inference form: PyTorch's attention dropout exports that way, yet
   * PyTorch drops there). Verify replays each PyTorch dropout with the engine's mask or none.
   */
  dropoutNodes: { name: string; dropped: boolean }[];
}

function copy(name: string, t: Tensor): CapturedTensor {
  return { name, dtype: t.dtype, shape: [...t.shape], data: t.data.slice() };
}

/** Records a run's dropout masks through the run's onValue hook, then copies what the run used. */
export class RunCaptureRecorder {
  private readonly masks: CapturedTensor[] = [];
  private readonly nodes: { name: string; dropped: boolean }[] = [];

  readonly onValue = (v: OnnxValue): void => {
    if (v.kind !== 'node' || v.node?.opType !== 'Dropout' || v.outputIndex !== 0) return;
    const mask = dropoutMaskOf(v.tensor);
    this.nodes.push({ name: v.node.name, dropped: !!mask });
    if (mask) this.masks.push(copy(v.node.name, mask));
  };

  /** Call after backward: reads device tensors back and copies everything. */
  async collect(model: OnnxModel, run: OnnxRunResult, dtype: FloatDType, mode: 'train' | 'eval'): Promise<RunCapture> {
    const params = [...model.parameters];
    const buffers = [...model.buffers].filter(([, t]) => isFloat(t.dtype));
    await readTensors([...params.map(([, t]) => t), ...params.map(([, t]) => t.grad), ...buffers.map(([, t]) => t), run.loss]);
    const { kind, output, classAxis, ignoreIndex } = run.lossInfo;
    return {
      dtype,
      mode,
      inputs: [...run.inputs].map(([name, t]) => copy(name, t)),
      outputs: model.outputs.map((o) => o.name),
      loss: { kind, output, classAxis, ignoreIndex, value: run.loss ? run.loss.item() : NaN, targets: run.targets ? copy('targets', run.targets) : null },
      values: [...params, ...buffers].map(([name, t]) => copy(name, t)),
      gradients: params.filter(([, t]) => t.grad).map(([name, t]) => copy(name, t.grad!)),
      dropout: this.masks,
      dropoutNodes: this.nodes,
    };
  }
}
