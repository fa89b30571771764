import { afterEach } from 'vitest';
import { killLeftovers } from './tidemark.js';

afterEach(killLeftovers);
