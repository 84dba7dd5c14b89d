export * from './record';
export * from './optim';
export * from './trainer';
export * from './dataset';
