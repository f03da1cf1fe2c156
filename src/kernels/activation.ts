// The one activation enum of the kernels, and the code each shader's `override ACT: u32` takes
// (conv2d*, batchnorm_train, conv_epilogue_backward, activation_backward all read the same codes).
export type Activation = 'none' | 'relu' | 'relu6' | 'sigmoid';

export const ACTIVATION_CODE: Record<Activation, number> = { none: 0, relu: 1, relu6: 2, sigmoid: 3 };

/** The activations a conv or batchnorm epilogue applies in place (sigmoid is a node of its own). */
export type EpilogueActivation = Exclude<Activation, 'sigmoid'>;
