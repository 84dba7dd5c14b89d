export * from './stats';
export * from './report';
export * from './collect';
export * from './diagnose';
export * from './onnxInspect';
export * from './attention';
export * from './baseline';
