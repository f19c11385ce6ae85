/* capctl: the admin command line of CertAutoPilot discovery (see docs/capctl.md). */
#include "ctl/ctl.h"

int main(int argc, char **argv)
{
    return cap_ctl_main(argc, argv);
}
