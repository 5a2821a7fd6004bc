// Every optional feature, in start order; main and the demo start them all, tests pick what they need.
import type { FeatureFactory } from './features.ts';

export const ALL_FEATURES: readonly FeatureFactory[] = [];
