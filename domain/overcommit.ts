/**
 * The vCPU overcommit ratio both schedulers use by default:
 * `$overage = cpus * overcommit`.
 *
 * CHOICE: the seed never shows how $overage is computed. cpus * 4 is a
 * common KVM vCPU overcommit ratio. With it, the 135-VM cap (rule 4) only
 * ever reports on hosts of 34+ cores: smaller hosts hit rule 3 first.
 */
export const V1_DEFAULT_OVERCOMMIT = 4;
