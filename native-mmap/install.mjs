// Placeholder replaced by the native shim work: never fails the install.
console.log('crimg: native-mmap build step not implemented yet');
