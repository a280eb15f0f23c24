/** Where phones download the relay's local CA certificate. */
export const CA_PATH = '/ca.crt';
