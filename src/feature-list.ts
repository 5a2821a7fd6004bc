// Every optional feature, in start order; main and the demo start them all, tests pick what they need.
import type { FeatureFactory } from './features.ts';
import { captureFeature } from './capture/feature.ts';
import { telemetryFeature } from './telemetry/feature.ts';
import { usageFeature } from './usage/feature.ts';

export const ALL_FEATURES: readonly FeatureFactory[] = [telemetryFeature, captureFeature, usageFeature];
