#ifndef SP_VERSION_H
#define SP_VERSION_H
#define SANDPIT_VERSION "0.1.0"
#endif
