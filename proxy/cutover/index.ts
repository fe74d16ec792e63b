/**
 * Cutover control: the plan, its gates, the MySQL state (store and the
 * per-replica reader), the controller, the analysis loop and autopilot, the
 * metric providers, the webhooks, and the admin API.
 */
export { addCutoverRoutes, createCutoverAdmin, createCutoverRouter, type CutoverAdmin, type CutoverAdminOptions } from './admin.ts';
export { createAutopilot, type Autopilot } from './autopilot.ts';
export type { AutopilotView } from './autopilot-view.ts';
export { createGateProviders, type GateProviders } from './providers.ts';
export { createWebhooks, signatureHeader, verifySignature, webhookSecretsFromEnv, type WebhookPayload } from './webhooks.ts';
export { createCutoverController, type ChangeResult, type CutoverController, type FeatureStatus, type RollbackTarget } from './controller.ts';
export { CUTOVER_ERRORS, CutoverError, type CutoverErrorCode } from './errors.ts';
export { evaluateStep, type Baseline, type GateReading, type GateVerdict, type ServiceMap } from './gates.ts';
export {
  loadDefaultPlan,
  loadPlanFile,
  regionRolloutSteps,
  resolveAnalysis,
  stepRouting,
  validatePlan,
  type AnalysisSpec,
  type CutoverPlan,
  type Gate,
  type WebhookSpec,
  type PlanFeature,
  type PlanStep,
} from './plan.ts';
export { parseSelector } from './selectors.ts';
export { parsePromText } from '../../lib/metrics/prom-text.ts';
export { histogramQuantile } from '../../lib/metrics/histogram-quantile.ts';
export { createReader } from './reader.ts';
export { createCutoverStateReader, createCutoverStateStore, type CutoverStateReader, type CutoverStateStore, type HistoryEntry } from './state-store.ts';
