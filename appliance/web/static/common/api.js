// A small fetch wrapper for the box's JSON API: CSRF header, errors as ApiError with `message`.

import { t } from './i18n.js';

/** An error answer of the box: {error, message, field?, remaining?, minutes?} and the status. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : t('ui.error.unexpected'));
    this.status = status;
    this.code = (body && body.error) || 'error';
    this.field = body && body.field;
    this.remaining = body && body.remaining;
    this.minutes = body && body.minutes;
  }
}

let csrfToken = null;
let unauthorizedHandler = null;

/** Remember the session's CSRF token; every change request sends it. */
export function setCsrf(token) {
  csrfToken = token;
}

/** Called when the box says the session is gone (not_logged_in), e.g. after a restart. */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

/** Call the API: `api('/api/patients', {method: 'POST', body: {...}})` → parsed JSON. */
export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let response;
  try {
    response = await fetch(path, {
      method, headers, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { error: 'network', message: t('ui.error.network') });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data || {
      error: 'http_error', message: t('ui.error.unexpected'),
    });
    if (error.code === 'not_logged_in' && unauthorizedHandler) unauthorizedHandler(error);
    throw error;
  }
  return data;
}
