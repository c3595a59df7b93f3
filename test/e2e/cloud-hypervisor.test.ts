/**
 * The lifecycle, agent and kernel-only e2e on a real Cloud Hypervisor; opt-in with
 * HYPERCORE_TEST_CLOUD_HYPERVISOR (see opt-in-vmm-suite.ts). Cloud Hypervisor ends when its guest
 * powers off through ACPI, so the kernel-only guest powers off.
 */
import { optInVmmSuite } from './opt-in-vmm-suite.js';

optInVmmSuite({
  provider: 'cloud-hypervisor',
  title: 'Cloud Hypervisor',
  table: 'cloud_hypervisor',
  env: 'HYPERCORE_TEST_CLOUD_HYPERVISOR',
  requirement: '/path/to/cloud-hypervisor (v51.0 or newer)',
  kernel: 'vmlinuz',
  guestEnd: 'poweroff',
});
