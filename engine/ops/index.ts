export * from './elementwise';
export * from './reduce';
export * from './layout';
export * from './matmul';
export * from './indexing';
export * from './softmax';
export * from './loss';
